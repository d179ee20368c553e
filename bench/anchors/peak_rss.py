#!/usr/bin/python3
"""Runs a command as a separate process and prints its peak resident set size.

  peak_rss.py --side onnxforge --setting fp32 -- COMMAND [ARGS...]

Prints one JSON line on stdout: {"side", "setting", "max_rss_kib", "rc", "wall_s"}, where
max_rss_kib is ru_maxrss of the child (os.wait4: the child and any descendants it waited for),
in KiB as Linux reports it. The child's own stdout and stderr go to stderr.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", required=True)
    parser.add_argument("--setting", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno())
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    print(json.dumps({"side": args.side, "setting": args.setting,
                      "max_rss_kib": usage.ru_maxrss, "rc": child.returncode,
                      "wall_s": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
