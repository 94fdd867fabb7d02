"""Fail if `nbdev-export`, `nbdev-clean` or `tools/readme.py` (README.md from nbs/index.ipynb) would change any file
of the repository (what CI enforces)."""
import hashlib, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bin_ = Path(sys.executable).parent

def snapshot() -> dict:
    "Hash every tracked file and every untracked file git does not ignore."
    out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=root,
                         capture_output=True, check=True).stdout.decode().split('\0')
    return {f: hashlib.sha256((root/f).read_bytes()).hexdigest() for f in out if f and (root/f).is_file()}

before = snapshot()
for cmd in ([str(bin_/'nbdev-export')], [str(bin_/'nbdev-clean')], [sys.executable, str(root/'tools'/'readme.py')]):
    subprocess.run(cmd, cwd=root, check=True, stdout=subprocess.DEVNULL)
after = snapshot()
changed = sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))
if changed:
    print('nbdev-export / nbdev-clean / tools/readme.py changed these files (they are fixed in your tree now):', *changed, sep='\n  ')
    print('Review the change (git diff) and commit it: CI runs on what is committed.')
    sys.exit(1)
print(f'nbdev hygiene: export, clean and the README leave all {len(after)} files unchanged.')
