mkdir -p bottles/.git && printf -- '---\ncolour: red\n---\n' > bottles/.git/HEAD.md
