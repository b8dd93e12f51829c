ln -s .rev/abc123 bottles/current
ln -s .data/web.md bottles/web.md
