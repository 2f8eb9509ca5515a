"""Cold-start ratio: `tmplc compile chatml --to jinja` vs `python -c "import jinja2, lark"`; interleaved runs, median."""
import os, statistics, subprocess, sys, time
root = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
py = os.path.join(root, ".venv/bin/python")
env = dict(os.environ, PYTHONPATH=os.path.join(root, "src"))
a = [py, "-m", "tmplc.cli", "compile", "chatml", "--to", "jinja"]
b = [py, "-c", "import jinja2, lark"]
subprocess.run(a, env=env, capture_output=True, check=True); subprocess.run(b, env=env, check=True)
ta, tb = [], []
for _ in range(n):
    for cmd, acc in ((a, ta), (b, tb)):
        t = time.perf_counter(); subprocess.run(cmd, env=env, capture_output=True, check=True); acc.append(time.perf_counter() - t)
ma, mb = statistics.median(ta), statistics.median(tb)
print(f"tmplc compile chatml --to jinja: median {ma*1000:.0f} ms; import jinja2, lark: median {mb*1000:.0f} ms; ratio {ma/mb:.2f} (n={n})")
