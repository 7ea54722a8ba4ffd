"""Builders and paths shared by several test modules (and tests/scripts/ddp_train.py): tests import
them from here, never from another test module. Fixtures live in conftest.py. Importing this module
is cheap: torch and the trainer are imported by the builders that need them."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import re
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from cutkit.data.records import JudgmentRecord

if TYPE_CHECKING:
    import torch

    from cutkit.train.trainer import CUTTrainer

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
OFFICIAL_SAMPLE = SHARED_DATA / "cut-official-sample" / "train-alpaca-sample-iter1.json"
FIXTURES = Path(__file__).parent / "fixtures"
BENCHMARKS = REPO / "benchmarks"


# ------------------------------------------------------------------------------------ records


def arithmetic_records(
    n: int = 6, n_positive: int | None = None, *, refinements: bool = False
) -> list[JudgmentRecord]:
    """``n`` wrong sums (negatives ``n0``, ``n1``, ...; with ``refinements``, each carries the right
    answer as its refinement), then ``n_positive`` (default ``n``) right doublings (``p0``, ...)."""
    negatives = [
        JudgmentRecord(
            f"n{i}",
            f"What is {i} + {i}?",
            f"It is {2 * i + 1}.",
            f"Wrong: {i} + {i} is {2 * i}, not {2 * i + 1}.",
            refinement=f"It is {2 * i}." if refinements else None,
        )
        for i in range(n)
    ]
    positives = [
        JudgmentRecord(f"p{i}", f"What is {i} * 2?", f"It is {2 * i}.")
        for i in range(n if n_positive is None else n_positive)
    ]
    return negatives + positives


def two_records() -> list[JudgmentRecord]:
    return [arithmetic_records(1)[0], JudgmentRecord("p", "Say hi.", "Hi there!")]


def mixed_records() -> list[JudgmentRecord]:
    """Negatives and positives of clearly different lengths (so padding is substantial)."""
    return [
        JudgmentRecord("n1", "What is 2 + 2?", "It is 5.", "Wrong: 2 + 2 is 4."),
        JudgmentRecord("p1", "Say hello to everyone in the room, politely please.", "Hello all!"),
        JudgmentRecord(
            "n2",
            "Name a colour.",
            "Blue is a colour that I like a lot, and the sky is often that colour too.",
            "Correct but far too long for such a short question.",
        ),
        JudgmentRecord("p2", "Spell cat.", "C-A-T."),
    ]


# ------------------------------------------------------------------------------------ training


def make_trainer(records, tokenizer, output_dir, **overrides) -> CUTTrainer:
    """A deterministic trainer: tiny model, LoRA without dropout, SGD, constant lr, no clipping."""
    import torch

    from cutkit.models.lora import apply_lora
    from cutkit.models.tiny import tiny_model
    from cutkit.train.config import CUTConfig
    from cutkit.train.trainer import CUTTrainer

    torch.manual_seed(0)  # the Gaussian LoRA init draws from the global generator
    model = apply_lora(
        tiny_model(seed=0), {"r": 4, "lora_dropout": 0.0, "init_lora_weights": "gaussian"}
    )
    settings = dict(
        output_dir=str(output_dir),
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=0.0,
        align_p_ratio=None,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        use_cpu=True,
    )
    return CUTTrainer(
        model,
        CUTConfig(**{**settings, **overrides}),
        train_dataset=records,
        processing_class=tokenizer,
    )


def lora_weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.named_parameters() if v.requires_grad}


def assert_same_weights(a: dict, b: dict, atol=1e-6):
    import torch

    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-5, msg=key)


# ---------------------------------------------------------------------------------- benchmarks


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` (``name`` is ``"folder/script"``, e.g. ``"step/bench_step"``) loaded
    by its path as module ``script`` (benchmarks/ is no package and is not put on sys.path). A
    script's imports of other benchmark scripts (bench_step's ``from released_code_step import
    ...`` beside it, learning_curves' ``import onpolicy_experiment`` from benchmarks/onpolicy/,
    which work when it runs as a script) resolve because those are loaded first, found by file
    name in the benchmark folders; each loaded script is registered in sys.modules under its file
    name."""
    path = BENCHMARKS / f"{name}.py"
    module_name = path.stem
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        assert Path(getattr(loaded, "__file__", "")) == path, f"{module_name} is already {loaded}"
        return loaded
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            for imported in modules:
                found = sorted(BENCHMARKS.glob(f"*/{imported}.py"))
                assert len(found) <= 1, f"{imported} is ambiguous: {found}"
                if found and imported != module_name:
                    load_benchmark(found[0].relative_to(BENCHMARKS).with_suffix("").as_posix())
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def read_jsonl_rows(path: Path) -> list[dict]:
    """The JSON objects of a JSONL data file, one per non-empty line."""
    import json

    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def is_positive_row(row: dict) -> bool:
    """The bundled data's positive rule: no judgment, or one starting with "Perfect"."""
    return row["judgment"] is None or row["judgment"].startswith("Perfect")


# ------------------------------------------------------------------------------ files and ports


def write_jsonl_rows(path: Path, rows) -> Path:
    """Write ``rows`` (JSON objects) to ``path`` as JSONL, one per line; returns ``path``."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def truncate_file(path: Path, keep: float = 0.5) -> None:
    """Cut ``path`` short to its first ``keep`` share of bytes (a file whose writing was cut off)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def free_port() -> int:
    """A TCP port nobody listens on now (a fixed port can still be held by an earlier run)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------- a local judge endpoint


def judge_completion(content) -> bytes:
    """A chat-completions reply body whose ``choices[0].message.content`` is ``content``."""
    return json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": content}}]}
    ).encode()


def judge_reply(handler, status: int, body: bytes, headers: dict | None = None) -> None:
    """Send ``status``, ``headers`` (Content-Length unless given or closing) and ``body``."""
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    if "Content-Length" not in (headers or {}) and "Connection" not in (headers or {}):
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


Behaviour = Callable[[BaseHTTPRequestHandler, int], None]


def judge_never_answers(handler, n: int) -> None:
    """A behaviour that sends nothing until the server closes (at most a minute)."""
    handler.server.stop.wait(60)


class _JudgeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        in_path = self.path.strip("/").split("/")[0]
        if in_path in self.server.behaviours:
            case = in_path
        else:
            case = re.search(r"case=(\S+)", body["messages"][0]["content"]).group(1)
        server = self.server
        with server.lock:
            server.counts[case] += 1
            n = server.counts[case]
            server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            server.behaviours[case](self, n)
        except OSError:  # the client gave up
            self.close_connection = True
        finally:
            with server.lock:
                server.in_flight -= 1

    def log_message(self, *args):
        pass


class StubJudgeServer(ThreadingHTTPServer):
    """A local chat-completions endpoint: each POST is answered by ``behaviours[case](handler,
    n)``, ``n`` counting that case's requests; the case is the first path segment of the URL
    (:meth:`url`) or, for a URL without one, the ``case=NAME`` written in the prompt.
    ``requests`` records every request (path, headers, JSON body) and ``max_in_flight`` the most
    requests answered at once. ``stop`` is set when the server closes (a behaviour that hangs
    waits on it)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, behaviours: dict[str, Behaviour]):
        super().__init__(("127.0.0.1", 0), _JudgeHandler)
        self.behaviours = behaviours
        self.lock, self.counts, self.stop = threading.Lock(), Counter(), threading.Event()
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}/v1"

    def url(self, case: str) -> str:
        """The base URL whose requests ``behaviours[case]`` answers."""
        return f"http://127.0.0.1:{self.server_address[1]}/{case}/v1"

    def handle_error(self, request, client_address):
        pass


@contextlib.contextmanager
def judge_server(behaviours: dict[str, Behaviour]) -> Iterator[StubJudgeServer]:
    """A :class:`StubJudgeServer` serving in a thread for the ``with`` block."""
    server = StubJudgeServer(behaviours)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
