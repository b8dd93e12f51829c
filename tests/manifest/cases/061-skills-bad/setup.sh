ln -s SKILL.md bottles/skills/has-link/alias.md
