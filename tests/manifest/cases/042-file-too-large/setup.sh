python3 - <<'PY'
body = ("All work and no play makes Jack a dull boy. " * 20 + "\n")
with open("bottles/big.md", "w") as f:
    f.write("---\nagent_provider: x\n---\n")
    while f.tell() < 2 * 1024 * 1024:
        f.write(body)
with open("bottles/medium.md", "w") as f:
    f.write("---\nagent_provider: x\n---\n")
    while f.tell() < 512 * 1024:
        f.write(body)
PY
