"""Command line: ``python -m ift_core.data {fetch,info}``.

Examples
--------
>>> main(["info"])  # doctest: +SKIP
fashion_mnist: /usr/share/datasets/fashion-mnist
...
"""
from __future__ import annotations

import argparse
import sys

from .sources import DATASETS, _candidates, _missing_message, data_info, fetch


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ift_core.data",
                                     description="Find, fetch and list the real image data sets.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="find or download a data set (torchvision download)")
    p_fetch.add_argument("name", choices=DATASETS)
    p_fetch.add_argument("--root", default=None, help="folder to look in / download to "
                         "(default: the search order, then $IFT_DATA or <repo>/data)")
    p_info = sub.add_parser("info", help="print where each data set was found")
    p_info.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        try:
            print(f"{args.name}: {fetch(args.name, root=args.root)}")
        except Exception as exc:  # a network failure gets the same advice as missing files
            print(f"could not fetch {args.name}: {exc}\n"
                  f"{_missing_message(args.name, _candidates(args.name, args.root))}", file=sys.stderr)
            return 1
        return 0
    for name, where in data_info(root=args.root).items():
        print(f"{name}: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
