"""``python -m storesync.simulator --port P [--stores N] [--seed S] [--config file.json]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from storesync.simulator.config import SimulatorConfig
from storesync.simulator.server import serve
from storesync.simulator.stores import demo_config, generate_stores


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    """The configuration the command-line arguments describe."""
    config = demo_config()
    if args.config:
        config = SimulatorConfig.from_json(json.loads(Path(args.config).read_text()))
    if args.stores is not None:
        config = dataclasses.replace(config, stores=generate_stores(args.stores, seed=args.seed))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storesync.simulator",
        description="Serve simulated Shopify and Klaviyo APIs for storesync's tests and demo.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument(
        "--stores", type=int, default=None, help="generate N stores instead of the demo's three"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --stores")
    parser.add_argument(
        "--config", default=None, help="a JSON file in SimulatorConfig.to_json() form"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    config = build_config(args)
    root = f"http://{args.host}:{args.port}"
    print(f"storesync simulator: {len(config.stores)} stores on {root}", flush=True)
    print(f"  STORESYNC_SHOPIFY_BASE_URL={root}/shops/{{shop}}", flush=True)
    print(f"  STORESYNC_KLAVIYO_BASE_URL={root}", flush=True)
    print(f"  stores and credentials: {root}/_sim/stores", flush=True)
    serve(args.host, args.port, config, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
