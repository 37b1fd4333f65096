"""``prolita-bot sandbox``: the whole bot offline, with a web chat, for demos, training and trying it.

See :mod:`bot.sandbox.server` (the process tree and the web endpoints) and :mod:`bot.sandbox.seed`
(the demo personas and data).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(args: argparse.Namespace) -> int:
    from bot.sandbox.server import main as serve

    return serve(Path(args.dir), args.port, args.fresh)
