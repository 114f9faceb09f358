"""``msc-view`` / ``python runners/view.py``: open the report of some result files in a browser.

  python runners/view.py outputs/*.jsonl
  python runners/view.py outputs/*.jsonl --out reports/ --no-browser --port 8765

It writes the report (as ``runners/report.py`` does) into ``--out`` or a temporary folder, serves
that folder on 127.0.0.1 only, prints the address, opens it in the browser unless --no-browser,
and serves until Ctrl-C (a temporary folder is removed then).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import shutil
import signal
import sys
import tempfile
import webbrowser
from pathlib import Path

from msc_graph.cli import report as report_cli
from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag


def parser() -> OneLineParser:
    ap = OneLineParser(prog="runners/view.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result files (any number of settings and datasets)")
    add_flag(ap, "--out", default=None, help="folder to write the report to (default: a temporary folder, removed on exit)")
    add_flag(ap, "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    add_flag(ap, "--no-browser", action="store_true", help="print the address only; do not open a browser")
    add_flag(ap, "--compare", default="memory", metavar="SETTING", help="as runners/report.py --compare (default: memory)")
    add_flag(ap, "--baseline", default=None, metavar="VALUE", help="as runners/report.py --baseline")
    return ap


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass


def serve(folder: Path, port: int) -> http.server.ThreadingHTTPServer:
    """A file server for ``folder`` on 127.0.0.1 (never another interface)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"error: --port {args.port} is not a port; give 0-65535 (0: a free one)", file=sys.stderr)
        return EXIT_BAD_INPUT
    temporary = args.out is None
    out = Path(tempfile.mkdtemp(prefix="msc-view-")) if temporary else Path(args.out)
    try:
        rargs = report_cli.parser().parse_args([*args.results, "--out", str(out), "--compare", args.compare,
                                                *(["--baseline", args.baseline] if args.baseline else [])])  # fmt: skip
        built = report_cli.build(rargs)
        if isinstance(built, int):
            return built
        try:
            server = serve(out, args.port)
        except OSError as exc:
            print(f"error: cannot serve on 127.0.0.1:{args.port} ({exc}); give another --port", file=sys.stderr)
            return EXIT_BAD_INPUT
        url = f"http://127.0.0.1:{server.server_address[1]}/report.html"
        print(f"report: {url}  (files in {out}; Ctrl-C stops)", flush=True)
        if not args.no_browser:
            webbrowser.open(url)
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
        return 0
    finally:
        if temporary:
            shutil.rmtree(out, ignore_errors=True)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
