"""Hostile and broken input through the CLI (issue 12): each class runs ``tmplc`` in a subprocess
and asserts the exit code (0 ok, 1 a check failed, 2 bad input, 3 refused), no traceback, a first
line of stderr that names the file and the problem, and that a run that must stop does so
within the tool's own limit (``TMPLC_UNTRUSTED_TIMEOUT``) plus start-up slack — a bound on a
hang, not a speed assertion.

The commands here are every one except ``format`` (tested with its own data classes).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4.0          # TMPLC_UNTRUSTED_TIMEOUT for these runs (seconds)
SLACK = 60.0         # process start, imports, Go build on a cold cache: generous on 2 shared cores

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPEC = "U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n"
MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def tmplc(*args: str, cwd: Path, stdin=None, env: dict | None = None, close_stdout: bool = False):
    """Run the CLI in a subprocess; (returncode, stdout, stderr, seconds)."""
    e = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TMPLC_UNTRUSTED_TIMEOUT=str(LIMIT))
    e.pop("TMPLC_DEBUG", None)
    e.update(env or {})
    t0 = time.monotonic()
    if close_stdout:  # the shell closes fd 1 before running tmplc (`tmplc ... >&-`)
        cmd = " ".join(["exec", sys.executable, "-m", "tmplc.cli", *(_q(a) for a in args), ">&-"])
        p = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=e, capture_output=True, text=True, timeout=600)
    else:
        p = subprocess.run([sys.executable, "-m", "tmplc.cli", *args], cwd=cwd, env=e, input=stdin,
                           capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


@dataclass
class Case:
    """One hostile input: ``make(tmp)`` writes the files and returns the argv; ``code``: the exit
    code; ``names``: what the first line of stderr must contain (the file, the problem)."""

    id: str
    make: Callable[[Path], list[str]]
    code: int
    names: tuple[str, ...]
    bounded: bool = False           # stops within LIMIT + SLACK (an untrusted template)
    close_stdout: bool = False
    check: Callable[[Path, str], None] | None = None
    env: dict = field(default_factory=dict)


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def modelfile(tmp: Path, template: str) -> str:
    return str(write(tmp / "m" / "Modelfile", 'FROM ./x.gguf\nTEMPLATE """' + template + '"""\n'))


def gguf_file(path: Path, name: str) -> Path:
    """A real GGUF file (written by gguf-py) with a chat template and an untrusted general.name."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<unk>", "<s>", "</s>", "<|im_end|>", "a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(3)
    w.add_chat_template(CHATML)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# -- untrusted Ollama templates (12.1) -------------------------------------------------------------

DEEP_RANGE = "{{ range $.Messages }}" * 14 + "x" + "{{ end }}" * 14 + "{{ range .Messages }}{{ .Content }}{{ end }}"
QUIET_RANGE = "{{ range $.Messages }}" * 14 + "{{ end }}" * 14 + "{{ range .Messages }}{{ .Content }}{{ end }}"
DOUBLING = ('{{ define "t0" }}xxxxxxxx{{ end }}'
            + "".join('{{ define "t%d" }}{{ template "t%d" . }}{{ template "t%d" . }}{{ end }}' % (i, i - 1, i - 1)
                      for i in range(1, 40))
            + '{{ template "t39" . }}{{ range .Messages }}{{ .Content }}{{ end }}')
MEMORY = ('{{ $a := "xxxxxxxxxxxxxxxx" }}' + '{{ $a = printf "%s%s" $a $a }}' * 40
          + "{{ range .Messages }}{{ .Content }}{{ end }}")
RECURSION = '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}'

CASES = [
    Case("ollama-14-deep-range-identify", lambda t: ["identify", modelfile(t, DEEP_RANGE)], 3,
         ("Modelfile", "output limit"), bounded=True),
    Case("ollama-14-deep-range-convert", lambda t: ["convert", modelfile(t, DEEP_RANGE)], 3,
         ("Modelfile", "limit"), bounded=True),
    Case("ollama-14-deep-range-no-output", lambda t: ["identify", modelfile(t, QUIET_RANGE)], 3,
         ("Modelfile", "time limit"), bounded=True),
    Case("ollama-doubling-template-chain", lambda t: ["convert", modelfile(t, DOUBLING)], 3,
         ("Modelfile", "output limit"), bounded=True),
    Case("ollama-memory-bomb", lambda t: ["convert", modelfile(t, MEMORY)], 3,
         ("Modelfile", "limit"), bounded=True),
    Case("ollama-endless-recursion", lambda t: ["identify", modelfile(t, RECURSION)], 3,
         ("Modelfile",), bounded=True),
]


# -- path traversal from GGUF metadata (12.1b) -----------------------------------------------------

def _no_escape(name: str):
    def check(tmp: Path, stdout: str) -> None:
        work = tmp / "work"
        outs = [p for p in work.iterdir() if p.is_dir()]
        assert len(outs) == 1 and (outs[0] / "manifest.json").is_file(), list(work.iterdir())
        assert outs[0].parent == work
        assert not (tmp / "PWNED-converted").exists() and not Path("/tmp/tmplc-hostile-PWNED-converted").exists()
    return check


def _traversal(name: str):
    def make(tmp: Path) -> list[str]:
        (tmp / "work").mkdir()
        return ["convert", str(gguf_file(tmp / "m.gguf", name)), "--to", "all"]
    return make


CASES += [
    Case("gguf-name-absolute", _traversal("/tmp/tmplc-hostile-PWNED"), 0, (), check=_no_escape("abs")),
    Case("gguf-name-dotdot", _traversal("../../PWNED"), 0, (), check=_no_escape("dotdot")),
]


# -- encodings (12.2) ------------------------------------------------------------------------------

BAD_UTF8 = SPEC.encode()[:5] + b"\xff\xfe\x80" + SPEC.encode()[5:]
UTF16 = "\ufeff".encode("utf-16-le") + SPEC.encode("utf-16-le")
CASES += [
    Case("spec-invalid-utf8", lambda t: ["compile", str(write(t / "bad.spec", BAD_UTF8))], 2,
         ("bad.spec", "UTF-8", "byte offset 5")),
    Case("spec-utf16-bom", lambda t: ["compile", str(write(t / "u16.spec", UTF16))], 2, ("u16.spec", "UTF-16")),
    Case("spec-utf8-bom-ok", lambda t: ["compile", str(write(t / "bom.spec", b"\xef\xbb\xbf" + SPEC.encode()))],
         0, ()),
    Case("yaml-invalid-utf8", lambda t: ["compile", str(write(t / "bad.yaml", b"spec: |\n  " + BAD_UTF8))], 2,
         ("bad.yaml", "UTF-8")),
    Case("jinja-invalid-utf8", lambda t: ["convert", str(write(t / "chat_template.jinja", b"\xc3(" + CHATML.encode()))],
         2, ("chat_template.jinja", "UTF-8")),
    Case("tokenizer-config-utf16", lambda t: ["convert", str(write(
        t / "tokenizer_config.json", "\ufeff".encode("utf-16-le") + json.dumps({"chat_template": CHATML}).encode(
            "utf-16-le")))], 2, ("tokenizer_config.json", "UTF-16")),
    Case("modelfile-invalid-utf8", lambda t: ["identify", str(write(t / "m" / "Modelfile", b'FROM x\nTEMPLATE "\xff"\n'))],
         2, ("Modelfile", "UTF-8")),
    Case("messages-invalid-utf8", lambda t: ["render", "chatml", "--messages",
                                             str(write(t / "m.json", b'[{"role":"user","content":"\xff"}]'))],
         2, ("m.json", "UTF-8")),
    Case("messages-lone-surrogate-out", lambda t: ["render", "chatml", "--messages",
                                                   str(write(t / "m.json", '[{"role":"user","content":"\\ud800"}]'))],
         2, ("surrogate",)),
]


# -- deep nesting, huge numbers (12.3) -------------------------------------------------------------

CASES += [
    Case("messages-nested-100k", lambda t: ["render", "chatml", "--messages",
                                            str(write(t / "deep.json", "[" * 100_000 + "]" * 100_000))],
         2, ("deep.json", "nested")),
    Case("messages-jsonl-huge-int", lambda t: ["render", "chatml", "--messages", str(write(
        t / "big.jsonl", '{"messages": [{"role": "user", "content": ' + "9" * 100_000 + "}]}\n"))],
         2, ("big.jsonl", "digits")),
    Case("tokenizer-config-nested", lambda t: ["convert", str(write(
        t / "tokenizer_config.json", '{"chat_template": ' + "[" * 50_000 + "]" * 50_000 + "}"))],
         2, ("tokenizer_config.json", "nested")),
    Case("yaml-spec-nested", lambda t: ["compile", str(write(t / "deep.yaml", "spec: " + "[" * 50_000 + "]" * 50_000))],
         2, ("deep.yaml", "nested")),
    Case("jinja-nested-parens", lambda t: ["convert", str(write(
        t / "chat_template.jinja", "{{ " + "(" * 5_000 + "1" + ")" * 5_000 + " }}" + CHATML))],
         2, ("chat_template.jinja", "nested")),
    Case("jinja-nested-ifs", lambda t: ["convert", str(write(
        t / "chat_template.jinja", "{% if true %}" * 3_000 + "{% endif %}" * 3_000 + CHATML))],
         2, ("chat_template.jinja", "nested")),
]


# -- outputs (12.7) --------------------------------------------------------------------------------

def _readonly(tmp: Path) -> list[str]:
    d = tmp / "ro"
    d.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits, not the immutable flag (chattr must work here)
        subprocess.run(["chattr", "+i", str(d)], check=True)
    else:
        d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return ["compile", "chatml", "--out", str(d / "t.jinja")]


def _missing_parent_created(tmp: Path, _out: str) -> None:
    assert (tmp / "new" / "sub" / "t.jinja").read_text().startswith("{#- tmplc chat template")
    assert not [p for p in (tmp / "new" / "sub").iterdir() if p.name.startswith(".")]  # no temp file left


def _stale_kept_out(tmp: Path, _out: str) -> None:
    assert (tmp / "keep.jinja").read_text() == "previous"  # a failed run never half-writes it


CASES += [
    Case("out-readonly-folder", _readonly, 2, ("ro", "not writable")),
    Case("out-missing-folder-created", lambda t: ["compile", "chatml", "--out", str(t / "new" / "sub" / "t.jinja")],
         0, (), check=_missing_parent_created),
    Case("out-is-a-folder", lambda t: ["compile", "chatml", "--out", str((t / "d").mkdir() or t / "d")], 2,
         ("d", "folder")),
    Case("out-parent-is-a-file", lambda t: ["compile", "chatml", "--out", str(write(t / "f", "x") / "t.jinja")], 2,
         ("f", "is a file")),
    Case("out-all-is-a-file", lambda t: ["compile", "chatml", "--to", "all", "--out", str(write(t / "f", "x"))], 2,
         ("f", "is a file")),
    Case("out-full-disk", lambda t: ["compile", "chatml", "--out", "/dev/full"], 2, ("/dev/full", "no space")),
    Case("out-closed-stdout-compile", lambda t: ["compile", "chatml"], 2, ("stdout", "closed"), close_stdout=True),
    Case("out-closed-stdout-render", lambda t: ["render", "chatml", "--messages",
                                                 str(write(t / "m.json", json.dumps(MESSAGES)))],
         2, ("stdout", "closed"), close_stdout=True),
    Case("out-failed-run-keeps-old-file", lambda t: ["compile", str(write(t / "bad.spec", "nope {INPUT}")), "--out",
                                                      str(write(t / "keep.jinja", "previous"))],
         2, ("bad.spec",), check=_stale_kept_out),
]


# -- exit codes (12.10) ----------------------------------------------------------------------------

CASES += [
    Case("compile-unknown-name", lambda t: ["compile", "no-such-format"], 2, ("no-such-format",)),
    Case("render-missing-messages", lambda t: ["render", "chatml", "--messages", str(t / "nope.json")], 2,
         ("nope.json", "no such")),
    Case("render-malformed-json", lambda t: ["render", "chatml", "--messages", str(write(t / "m.json", "[{"))], 2,
         ("m.json",)),
    Case("render-bad-role", lambda t: ["render", "chatml", "--messages", str(write(
        t / "m.json", json.dumps([{"role": "robot", "content": "x"}])))], 2, ("robot",)),
    Case("render-show-labels-without-tokenizer", lambda t: ["render", "chatml", "--messages", str(write(
        t / "m.json", json.dumps(MESSAGES))), "--show-labels"], 2, ("--tokenizer",)),
    Case("render-tokenizer-missing-folder", lambda t: ["render", "chatml", "--messages", str(write(
        t / "m.json", json.dumps(MESSAGES))), "--show-labels", "--tokenizer", str(t / "tok")], 2, ("tok", "folder")),
    Case("render-tokenizer-hub-id", lambda t: ["render", "chatml", "--messages", str(write(
        t / "m.json", json.dumps(MESSAGES))), "--show-labels", "--tokenizer", "meta-llama/Llama-3-8B"], 2,
         ("meta-llama/Llama-3-8B", "never downloads")),
    Case("render-tokenizer-corrupt", lambda t: ["render", "chatml", "--messages", str(write(
        t / "m.json", json.dumps(MESSAGES))), "--show-labels", "--tokenizer",
        str(write(t / "tok" / "tokenizer.json", "{not json").parent),
        "--bos-token", "<s>"] if write(t / "tok" / "tokenizer_config.json", "{}") else [], 2, ("tokenizer.json",)),
    Case("render-bad-policy", lambda t: ["render", "chatml", "--messages", str(write(
        t / "m.json", json.dumps(MESSAGES))), "--show-labels", "--tokenizer", str(t), "--policy", "bogus"], 2,
         ("--policy", "bogus")),
    Case("render-limit-0", lambda t: ["render", "chatml", "--messages", str(write(t / "m.json", json.dumps(MESSAGES))),
                                      "--limit", "0"], 2, ("--limit",)),
    Case("verify-missing", lambda t: ["verify", str(t / "nope"), "--template", "chatml"], 2, ("nope", "no such")),
    Case("verify-differs-is-1", lambda t: ["verify", str(write(t / "chat_template.jinja", CHATML)), "--template",
                                           "llama-3"], 1, ("chat_template.jinja", "not match")),
    Case("verify-untrusted-ollama-bounded", lambda t: ["verify", modelfile(t, QUIET_RANGE), "--template", "chatml"], 3,
         ("Modelfile", "time limit"), bounded=True),
    Case("convert-out-is-a-folder", lambda t: ["convert", str(write(t / "chat_template.jinja", CHATML)), "--out",
                                               str((t / "d").mkdir() or t / "d")], 2, ("d", "folder")),
    Case("convert-all-out-is-a-file", lambda t: ["convert", str(write(t / "chat_template.jinja", CHATML)), "--to",
                                                 "all", "--out", str(write(t / "f", "x"))], 2, ("f", "is a file")),
    Case("convert-missing-source", lambda t: ["convert", str(t / "nope")], 2, ("nope", "no such")),
    Case("identify-missing-source", lambda t: ["identify", str(t / "nope")], 2, ("nope", "no such")),
    Case("convert-not-gguf", lambda t: ["convert", str(write(t / "x.gguf", b"GGUF\x03\x00\x00\x00garbage"))], 2,
         ("x.gguf", "GGUF")),
    Case("convert-folder-without-template", lambda t: ["convert", str((t / "empty").mkdir() or t / "empty")], 2,
         ("empty",)),
    Case("convert-bad-var", lambda t: ["convert", str(write(t / "chat_template.jinja", CHATML)), "--var", "x"], 2,
         ("--var",)),
    Case("convert-refused-is-3", lambda t: ["convert", str(write(
        t / "chat_template.jinja", "{{ strftime_now('%H:%M') }}" + CHATML))], 3, ("chat_template.jinja", "time of day")),
    Case("identify-no-match-is-1", lambda t: ["identify", str(write(
        t / "chat_template.jinja", CHATML.replace("<|im_end|>", "<|END|>")))], 1, ("chat_template.jinja", "no registry")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile(case: Case, tmp_path: Path):
    argv = case.make(tmp_path)
    cwd = tmp_path / "work" if (tmp_path / "work").is_dir() else tmp_path
    try:
        code, out, err, seconds = tmplc(*argv, cwd=cwd, env=case.env, close_stdout=case.close_stdout)
    finally:
        for p in tmp_path.rglob("*"):  # let pytest clean up read-only folders
            if p.is_dir():
                if p.name == "ro" and os.geteuid() == 0:
                    subprocess.run(["chattr", "-i", str(p)], check=False)
                p.chmod(stat.S_IRWXU)
    assert "Traceback" not in err, err
    assert code == case.code, (code, err[-2000:])
    # the problem is on the first line of stderr (identify's "no match" is its answer, on stdout)
    first = (err.strip().splitlines() or out.strip().splitlines() or [""])[0]
    for word in case.names:
        assert word.lower() in first.lower(), (word, first)
    if case.bounded:
        assert seconds < LIMIT + SLACK, seconds
    if case.check:
        case.check(tmp_path, out)
