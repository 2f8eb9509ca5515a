"""tmplc train on CPU: tiny random Llama/Qwen3 models with the real Llama-3/Qwen3 tokenizers.

The losses are checked against transformers' own loss (``model(input_ids, labels=...)``) on each
conversation alone, with the labels from tmplc's formatter: that is the independent reference for
"masked tokens contribute nothing" and for "packed == unpacked".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_module

torch = require_module("torch")
require_module("peft")

import tmplc
from tmplc.cli import main
from tmplc.train import make_config
from tmplc.train.loop import Trainer

from train_fixtures import conversations, tiny_model, write_jsonl

BASE = dict(max_seq_length=128, batch_size=2, grad_accum=1, logging_steps=1, save_steps=0, progress=False,
            learning_rate=1e-2, warmup_steps=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: tiny_model(root, name) for name in ("llama3", "qwen3")}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("data") / "data.jsonl", conversations(40))


def opts(models, data_file, tmp_path, name="llama3", **kw):
    return {"model": str(models[name]), "data": str(data_file), "template": name, "out": str(tmp_path / "out"),
            "cache_dir": str(tmp_path / "cache"), **BASE, **kw}


def log_lines(out: Path) -> list[dict]:
    return [json.loads(l) for l in (out / "train-log.jsonl").read_text().splitlines()]


def metric_lines(out: Path) -> list[dict]:
    return [r for r in log_lines(out) if "loss" in r]


def hf_doc_loss(model, ids, labels):
    """transformers' own summed loss of one conversation (its labels from tmplc), and its target count."""
    ids_t = torch.tensor([list(ids)], dtype=torch.long)
    lab_t = torch.tensor([list(labels)], dtype=torch.long)
    n = int((lab_t[0, 1:] != -100).sum())
    with torch.no_grad():
        loss = model(input_ids=ids_t, labels=lab_t).loss
    return float(loss) * n, n


@pytest.mark.parametrize("name", ["llama3", "qwen3"])
def test_thirty_steps_lower_the_loss_and_save_what_export_reads(models, data_file, tmp_path, name):
    from transformers import AutoTokenizer

    r = tmplc.train(**opts(models, data_file, tmp_path, name, max_steps=30))
    assert r.steps == 30 and r.attention == "sdpa" and r.loss_mode == "chunked"
    losses = [m["loss"] for m in metric_lines(r.out)]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05, losses
    for rec in metric_lines(r.out):
        assert {"step", "loss", "learning_rate", "tokens_per_second"} <= set(rec)
    out = r.out
    # the adapter, and the tokenizer whose chat template is the training format (both files agree)
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16
    fmt = tmplc.load(name)
    jinja = (out / "chat_template.jinja").read_text()
    assert jinja == json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == fmt.to_jinja()
    tok = AutoTokenizer.from_pretrained(str(out))
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == fmt.render(msgs, bos_token=tok.bos_token,
                                                                       eos_token=tok.eos_token)
    # generation_config stops at the end-of-turn token
    eot = {"llama3": "<|eot_id|>", "qwen3": "<|im_end|>"}[name]
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"][0] == tok.convert_tokens_to_ids(eot)
    # the recorded format is the training format
    recorded = tmplc.load(str(out / "tmplc.yaml"))
    assert recorded.structure == fmt.structure and recorded.to_jinja() == fmt.to_jinja()
    assert recorded.meta.eot_token == fmt.meta.eot_token
    rec = json.loads((out / "tmplc-train.json").read_text())
    assert rec["steps"] == 30 and rec["attention"] == "sdpa"
    assert rec["doctor"]["ran"] is True and rec["doctor"]["ignored"] == []
    # the Qwen3 fixture's own template is qwen3-thinking: the input folder mismatches the training
    # format, which the saved tokenizer resolves
    resolved = [f["code"] for f in rec["doctor"]["resolved_by_save"]]
    assert resolved == (["template-mismatch"] if name == "qwen3" else [])
    # the saved folder passes the doctor: with the recorded format, and with its own chat_template
    from tmplc.doctor import check

    for template in (str(out / "tmplc.yaml"), None):
        report = check(out, template=template)
        assert report.errors == [], [f.to_json() for f in report.errors]


def test_doctor_errors_refuse_unless_ignored_and_recorded(tmp_path, data_file, capsys):
    nostop = {"llama3": tiny_model(tmp_path, "llama3", stop_at_eot=False)}
    o = opts(nostop, data_file, tmp_path, max_steps=1)
    args = ["train", *[a for k, v in o.items() if k not in ("progress",)
                       for a in (f"--{k.replace('_', '-')}", str(v))], "--no-progress"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "eot-not-stop" in err and "--ignore eot-not-stop" in err and "Traceback" not in err
    assert main(args + ["--ignore", "eot-not-stop"]) == 0
    rec = json.loads((tmp_path / "out" / "tmplc-train.json").read_text())
    assert [f["code"] for f in rec["doctor"]["ignored"]] == ["eot-not-stop"]
    assert rec["config"]["ignore"] == ["eot-not-stop"]
    # the trainer's own output stops at the end of turn, so the doctor finds nothing wrong there
    from tmplc.doctor import check

    assert check(tmp_path / "out", template="llama3").errors == []


def test_first_step_loss_equals_transformers_loss_from_tmplc_labels(models, data_file, tmp_path):
    """Masked tokens contribute nothing: the trainer's loss of step 1 (two micro-batches, packed)
    equals transformers' loss over the same conversations alone, with tmplc's labels."""
    cfg = make_config(opts(models, data_file, tmp_path, grad_accum=2, max_steps=1))
    t = Trainer(cfg)
    t.setup()
    micro = t.plan.step(0)
    assert len(micro) == 2 and sum(len(d) for _, d in micro) >= 4
    total, n = 0.0, 0
    base = t.model.get_base_model()
    with t.model.disable_adapter():  # LoRA B is zero at init, so this is the same function
        for _, docs in micro:
            for i in docs:
                s, k = hf_doc_loss(base, *t.data.doc(int(i)))
                total, n = total + s, n + k
    n_plan = int(sum(int(t.plan.doc_targets[d].sum()) for _, d in micro))
    assert n_plan == n
    got = float(t.train_step([d for _, d in micro], n_plan))
    assert got == pytest.approx(total / n, rel=1e-5)
    assert n < sum(int(t.plan.lengths[d].sum()) for _, d in micro) / 2  # most tokens are masked context


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_per_document_losses_equal_unpacked(models, data_file, tmp_path, impl):
    """A packed row with its document mask gives each conversation exactly its loss alone; with
    restarted position_ids only (no mask), it does not (the leak this guards against)."""
    from tmplc.train import attention as attn
    from tmplc.train.loss import LossModule
    from tmplc.train.packing import collate_packed

    cfg = make_config(opts(models, data_file, tmp_path, max_steps=1))
    t = Trainer(cfg)
    t.setup()
    torch.manual_seed(0)
    for p in t.model.parameters():  # non-zero LoRA B so the adapters take part
        if p.requires_grad:
            p.data.normal_(0, 0.05)
    attn.set_impl(t.model, impl)
    docs = [0, 1, 2, 3]
    b = collate_packed(t.data, docs, pad_id=t.pad_id)
    lm = LossModule(t.model, "hf")
    base = t.model.get_base_model()

    def per_doc(mask):
        with torch.no_grad():
            logits = t.model(input_ids=b.input_ids, position_ids=b.position_ids, attention_mask=mask).logits[0]
        out, off = [], 0
        for L in b.seq_lens:
            tg = b.targets[0, off:off + L]
            out.append(float(torch.nn.functional.cross_entropy(logits[off:off + L], tg, ignore_index=-100,
                                                               reduction="sum")))
            off += L
        return out

    alone = [hf_doc_loss(base, *t.data.doc(i))[0] for i in docs]
    packed = per_doc(attn.dense_mask(b.seq_lens, torch.float32, "cpu"))
    assert packed == pytest.approx(alone, rel=1e-5, abs=1e-4)
    leaky = per_doc(None)
    assert max(abs(a - p) for a, p in zip(alone[1:], leaky[1:])) > 1e-3  # documents 2.. see document 1
    # the trainer's own loss path over the packed row = the sum of the documents alone
    with torch.no_grad():
        for mode in ("chunked", "hf"):
            lm.mode = mode
            s = float(lm(input_ids=b.input_ids, targets=b.targets, position_ids=b.position_ids,
                         attention_mask=attn.dense_mask(b.seq_lens, torch.float32, "cpu")))
            assert s == pytest.approx(sum(alone), rel=1e-5)


def test_chunked_cross_entropy_matches_full_logits():
    from tmplc.train.loss import linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(37, 16, requires_grad=True)
    w = torch.randn(300, 16, requires_grad=True)
    t = torch.randint(0, 300, (37,))
    ref = torch.nn.functional.cross_entropy(h @ w.t(), t, reduction="sum")
    gh, gw = torch.autograd.grad(ref * 0.5, (h, w))
    got = linear_cross_entropy(h, w, t, chunk=8)
    gh2, gw2 = torch.autograd.grad(got * 0.5, (h, w))
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)
    assert torch.allclose(gh, gh2, atol=1e-5) and torch.allclose(gw, gw2, atol=1e-4)


def test_flex_fallback_is_taken_and_recorded(models, data_file, tmp_path):
    """flex_attention cannot run here (no backward on CPU): the run falls back to the dense mask,
    says so, and trains with the same first-step loss as an sdpa run."""
    r = tmplc.train(**opts(models, data_file, tmp_path, attention="flex", max_steps=2))
    assert r.attention == "sdpa" and r.fallback and "flex_attention failed" in r.fallback
    start = log_lines(r.out)[0]
    assert start["fallback"] == r.fallback
    r2 = tmplc.train(**opts(models, data_file, tmp_path, attention="sdpa", max_steps=2,
                            out=str(tmp_path / "out2")))
    assert metric_lines(r.out)[0]["loss"] == pytest.approx(metric_lines(r2.out)[0]["loss"], rel=1e-6)


def test_resume_continues_steps_and_data_order(models, data_file, tmp_path):
    import shutil

    kw = dict(max_steps=6, save_steps=3, save_total_limit=3)
    a = tmplc.train(**opts(models, data_file, tmp_path, out=str(tmp_path / "a"), **kw))
    b = tmplc.train(**opts(models, data_file, tmp_path, out=str(tmp_path / "b"), **kw))
    assert sorted(p.name for p in b.out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    shutil.rmtree(b.out / "checkpoint-6")
    (b.out / "train-log.jsonl").unlink()
    r = tmplc.train(**opts(models, data_file, tmp_path, out=str(tmp_path / "b"), resume=True, **kw))
    lines = log_lines(r.out)
    assert lines[0]["event"] == "resume" and lines[0]["step"] == 3
    resumed = metric_lines(r.out)
    assert [m["step"] for m in resumed] == [4, 5, 6]
    full = {m["step"]: m for m in metric_lines(a.out)}
    for m in resumed:
        assert m["loss"] == pytest.approx(full[m["step"]]["loss"], rel=1e-5)
        assert m["learning_rate"] == pytest.approx(full[m["step"]]["learning_rate"])
        assert m["trained_tokens"] == full[m["step"]]["trained_tokens"]  # the same micro-batches


def test_save_total_limit_and_cache_hit(models, data_file, tmp_path):
    r = tmplc.train(**opts(models, data_file, tmp_path, max_steps=5, save_steps=1, save_total_limit=2))
    assert sorted(p.name for p in r.out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-5"]
    assert not list(r.out.glob(".*tmp"))
    assert r.cache_hit is False
    r2 = tmplc.train(**opts(models, data_file, tmp_path, max_steps=1, out=str(tmp_path / "o2")))
    assert r2.cache_hit is True
    r3 = tmplc.train(**opts(models, data_file, tmp_path, max_steps=1, out=str(tmp_path / "o3"),
                            policy="assistant_no_eot"))
    assert r3.cache_hit is False


def test_cli_refusals(models, data_file, tmp_path, capsys):
    import yaml

    cfg = tmp_path / "train.yaml"
    o = opts(models, data_file, tmp_path, max_steps=2)
    cfg.write_text(yaml.safe_dump({k.replace("_", "-") if k.startswith("max") else k: v for k, v in o.items()}))
    # disk guard: a threshold no disk meets
    assert main(["train", "--config", str(cfg), "--min-free-gb", "1e9"]) == 3
    err = capsys.readouterr().err
    assert "not enough disk space" in err and "--min-free-gb" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
    # 4-bit needs CUDA
    assert main(["train", "--config", str(cfg), "--load-in-4bit"]) == 3
    assert "--load-in-4bit needs a CUDA GPU" in capsys.readouterr().err
    # an unknown YAML key names itself
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_stpes: 3\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "unknown option 'max_stpes'" in capsys.readouterr().err


def test_cli_yaml_run_no_packing_and_merge(models, data_file, tmp_path, capsys):
    """--config + flags, padded batches, --merge: the merged folder is a full model whose logits
    equal base + adapter."""
    import yaml
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = tmp_path / "train.yaml"
    o = opts(models, data_file, tmp_path, name="qwen3")
    cfg.write_text(yaml.safe_dump(o))
    assert main(["train", "--config", str(cfg), "--max-steps", "3", "--no-packing", "--merge"]) == 0
    out = tmp_path / "out"
    assert "3 steps" in capsys.readouterr().err
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged"))
    base = AutoModelForCausalLM.from_pretrained(str(models["qwen3"]))
    peft_model = PeftModel.from_pretrained(base, str(out))
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft_model(ids).logits, atol=1e-4)
    assert (out / "merged" / "tmplc.yaml").is_file()
    assert (out / "merged" / "chat_template.jinja").read_text() == tmplc.load("qwen3").to_jinja()


def test_without_template_the_folders_own_chat_template_trains_and_is_recorded(models, data_file, tmp_path, capsys):
    """``tmplc train`` without ``--template`` trains on the model folder's own chat_template where
    tmplc imports it exactly (as ``tmplc check`` reads it), and refuses with the converter's reason
    where it cannot.  The recorded ``tmplc.yaml`` names the registry entry the template is
    (``llama-3``) and declares the end-of-turn token its turns end with (``<|eot_id|>``, not the
    tokenizer's ``<|end_of_text|>``): the export then stops on it."""
    import tmplc

    run = ["--data", str(data_file), "--max-steps", "2", "--max-seq-length", "128",
           "--cache-dir", str(tmp_path / "cache")]
    # the fixture tokenizer's own template ignores add_generation_prompt: not importable
    assert main(["train", "--model", str(models["llama3"]), "--out", str(tmp_path / "refused"), *run]) == 2
    err = capsys.readouterr().err
    assert "no --template given" in err and "ignores add_generation_prompt" in err and "tmplc fix" in err
    assert not (tmp_path / "refused" / "adapter_model.safetensors").exists()
    fixed = tmp_path / "fixed"
    assert main(["fix", str(models["llama3"]), "--template", "llama-3", "--out", str(fixed)]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["train", "--model", str(fixed), "--out", str(out), *run]) == 0
    assert "format: the model folder's chat_template (llama-3)" in capsys.readouterr().err
    rec = tmplc.load_spec_file(out / "tmplc.yaml")
    assert rec.name == "llama-3" and rec.eot_token == "<|eot_id|>" and rec.meta.eos_token == "<|end_of_text|>"
    reg = tmplc.load("llama-3")
    conv = conversations(3)[1]["messages"]
    assert rec.render(conv, bos_token="<|begin_of_text|>") == reg.render(conv, bos_token="<|begin_of_text|>")
