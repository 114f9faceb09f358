"""A small OpenAI-compatible server over transformers + PEFT: the base model and its trained
adapters, each under its own model name, on loopback. For CPU checks of a trained adapter (the CI
smoke evaluation with ``batch.py --reflection-model``); on a GPU serve adapters with SGLang
(``serve.py sglang --lora NAME=PATH``), which does the same with batching.

  python -m msc_graph.train.server --gguf SmolLM2.gguf --lora reflection=outputs/reflection-grpo/adapter

It prints ``PORT <n>`` when it listens. Requests run one at a time (a lock: the model is one).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from msc_graph.serving import ServingError, parse_loras
from msc_graph.train.model import TrainSetupError, load_with_adapters


class AdapterModels:
    """The base model (``base_name``) and its adapters (their names), answering chat requests."""

    def __init__(self, net, tokenizer, base_name: str, adapters: list[str]) -> None:
        self.net, self.tok, self.base_name, self.adapters = net, tokenizer, base_name, adapters
        self.lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    def complete(self, model: str, messages: list[dict], max_tokens: int, temperature: float, seed: int) -> dict:
        import torch

        ids = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        sample = temperature > 0
        with self.lock, torch.no_grad():
            torch.manual_seed(seed)
            if self.adapters:
                if model == self.base_name:
                    ctx = self.net.disable_adapter()
                else:
                    self.net.set_adapter(model)
                    ctx = _nothing()
            else:
                ctx = _nothing()
            with ctx:
                out = self.net.generate(**ids, max_new_tokens=max_tokens, do_sample=sample,
                                        temperature=temperature if sample else None, top_p=None, top_k=None,
                                        pad_token_id=self.tok.pad_token_id)  # fmt: skip
        new = out[0][ids["input_ids"].shape[1] :]
        text = self.tok.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= max_tokens else "stop"
        return {"text": text, "prompt_tokens": int(ids["input_ids"].shape[1]), "completion_tokens": len(new), "finish": finish}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def handler_for(models: AdapterModels) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in models.names]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            name = body.get("model", models.base_name)
            if name not in models.names:
                return self._send(404, {"error": {"message": f"model {name!r} is not served here; models: {models.names}"}})
            got = models.complete(name, body.get("messages") or [], int(body.get("max_tokens") or 256),
                                  float(body.get("temperature", 0.0) or 0.0), int(body.get("seed") or 0))  # fmt: skip
            self._send(200, {
                "id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()), "model": name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": got["text"]}, "finish_reason": got["finish"]}],
                "usage": {"prompt_tokens": got["prompt_tokens"], "completion_tokens": got["completion_tokens"],
                          "total_tokens": got["prompt_tokens"] + got["completion_tokens"]},
            })  # fmt: skip

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="base model: a hub id already downloaded, or a folder")
    ap.add_argument("--gguf", default="", help="a GGUF file instead of --model")
    ap.add_argument("--base-name", default="base", help="the base model's name in requests (default: %(default)s)")
    ap.add_argument("--lora", action="append", default=[], metavar="NAME=PATH", help="an adapter, served as NAME")
    ap.add_argument("--port", type=int, default=0, help="0: a free port (printed as PORT <n>)")
    args = ap.parse_args(argv)
    try:
        adapters = dict(parse_loras(args.lora))
        net, tok = load_with_adapters(args.model, args.gguf, adapters)
    except (TrainSetupError, ServingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(AdapterModels(net, tok, args.base_name, list(adapters))))
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
