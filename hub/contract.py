"""``python -m hub.contract [--write]``: check (or regenerate) the committed contract documents.

The documents are made by :mod:`hub.contractdoc` (``contract/event.schema.json``,
``contract/asyncapi.json``, ``contract/examples/``); without ``--write`` this
exits 1 and names every file that differs from what the code makes now.
"""

from __future__ import annotations

import argparse
import sys

from hub.contractdoc import CONTRACT_DIR, asyncapi, documents, event_schema, render, stale_files

__all__ = ["CONTRACT_DIR", "asyncapi", "documents", "event_schema", "main", "render"]


def main(argv: list[str] | None = None) -> int:
    """Write the documents (``--write``) or report the stale ones; the exit code."""
    parser = argparse.ArgumentParser(description="Generate or check the committed contract documents.")
    parser.add_argument("--write", action="store_true", help="write contract/*.json and contract/examples/")
    args = parser.parse_args(argv)
    generated = documents()
    stale = []
    for name, text in generated.items():
        path = CONTRACT_DIR / name
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(name)
    for name in stale_files(generated):
        if args.write:
            (CONTRACT_DIR / name).unlink()
        else:
            stale.append(f"{name} (no longer made)")
    if stale:
        print(f"stale: {', '.join(stale)}; run python -m hub.contract --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
