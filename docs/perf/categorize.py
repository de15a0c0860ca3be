#!/usr/bin/env python3
"""Shares of samples per category in folded stacks (inferno-collapse-perf
output): docs/perf/categorize.py FILE.folded...

Each stack counts under the first category whose marker it contains, in
the order below, so a syscall made inside hyper counts as HTTP framing.
This is the split of docs/perf/README.md's tables."""
import sys

CATEGORIES = [
    ("decision", ["warden_engine::engine", "cedar_policy", "warden_engine::memo"]),
    ("log", ["warden_engine::log"]),
    ("JSON", ["serde_json"]),
    ("HTTP framing", ["hyper::", "reqwest::", "axum::", "h2::", "http_body"]),
    ("syscalls", ["entry_SYSCALL", "__x64_sys", "syscall"]),
    ("wake-ups", ["futex", "unpark", "wake_by", "park_timeout", "Condvar"]),
]


def split(path):
    totals = {name: 0 for name, _ in CATEGORIES}
    other = 0
    for line in open(path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        n = int(count)
        for name, markers in CATEGORIES:
            if any(m in stack for m in markers):
                totals[name] += n
                break
        else:
            other += n
    return totals, other


def main():
    names = [n for n, _ in CATEGORIES]
    print("| profile | " + " | ".join(names) + " | other |")
    print("|---|" + "---:|" * (len(names) + 1))
    for path in sys.argv[1:]:
        totals, other = split(path)
        all_ = sum(totals.values()) + other or 1
        cells = [f"{100 * totals[n] / all_:.0f}%" for n in names]
        label = path.rsplit("/", 1)[-1].removesuffix(".folded")
        print(f"| {label} | " + " | ".join(cells) + f" | {100 * other / all_:.0f}% |")


if __name__ == "__main__":
    main()
