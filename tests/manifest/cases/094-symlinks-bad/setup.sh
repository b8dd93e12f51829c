ln -s ../outside.md bottles/escape.md
ln -s ../outside-dir bottles/escdir
ln -s .. bottles/sub/back
ln -s self.md bottles/self.md
ln -s nowhere.md bottles/dangling.md
