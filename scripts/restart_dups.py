#!/usr/bin/env python3
"""QoS 2 duplicates under repeated broker restarts, attributed (not run by CI: about 15 minutes).

Runs the ignored test `qos2_through_sigterm_restarts_all_along_a_long_stream` of tests/restarts.rs
once per pairing of publisher and subscriber tool (ours: c_examples/mqttc_pub, mqttc_sub;
mosquitto's: mosquitto_pub, mosquitto_sub): a persistent mosquitto is restarted with SIGTERM about
every half second until a persistent line-mode publisher (`-c -q 2 -l`) has sent --messages lines
at QoS 2 to a persistent subscriber (`-c -q 2`), through a proxy that records every packet. The
test attributes each duplicate the subscriber printed from that record (its module comment has
the rules):
  resent_after_release  the broker resent, with DUP, a PUBLISH whose PUBREL it had already sent
  sent_again_as_new     the broker sent the message again under a new packet id or without DUP
  subscriber            the subscriber printed it more often than MQTT allows a receiver to
  publisher             the publisher published it twice
  unexplained           none of these
and fails on a loss, a lost session, or a duplicate of our tools' (subscriber or publisher when
that tool is ours; unexplained always). This script prints a table of the figures, one row per
run (--rounds rounds of the pairings), then what became of lost messages where a run lost any
(unpublished, unreleased, not_printed, held_by_broker, dropped_by_broker, vanished: see
`lost_causes` in the test), and with --examples one packet sequence per rule seen in each run.
Exit 0 when every run passed.

  scripts/restart_dups.py                          all four pairings, 5,000 messages each
  scripts/restart_dups.py --rounds 3 --examples    three times over, with the evidence
  scripts/restart_dups.py --messages 1000 --pairs ours:ours
"""

import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST = "qos2_through_sigterm_restarts_all_along_a_long_stream"
RULES = ["resent_after_release", "sent_again_as_new", "subscriber", "publisher", "unexplained"]
PAIRS = ["ours:ours", "ours:mosquitto", "mosquitto:ours", "mosquitto:mosquitto"]


CARGO = ["cargo", "test", "--test", "restarts"]


def run(pair, messages):
    """Runs one pairing; returns (figures from the test's summary line, its examples, passed)."""
    pub, sub = pair.split(":")
    env = {"MQTTC_RESTARTS_PUB": pub, "MQTTC_RESTARTS_SUB": sub, "MQTTC_RESTARTS_MESSAGES": str(messages)}
    cmd = CARGO + ["--", "--ignored", "--exact", TEST, "--nocapture"]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    text = out.stdout + out.stderr
    summary = next((l for l in text.splitlines() if l.startswith("restart-dups:")), None)
    if summary is None:
        sys.stderr.write(text)
        return None, "", False
    figures = dict(re.findall(r"(\w+)=(\S+)", summary))
    lost = next((l for l in text.splitlines() if l.startswith("restart-dups lost:")), None)
    figures["lost_causes"] = lost.split(":", 1)[1].strip() if lost else ""
    examples = text[text.find("example ") :].split("\ntest ")[0] if "example " in text else ""
    return figures, examples, out.returncode == 0


def mosquitto_version():
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True)
    m = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--pairs", default=",".join(PAIRS), help="publisher:subscriber, comma-separated")
    ap.add_argument("--rounds", type=int, default=1, help="how many times to run the pairings")
    ap.add_argument("--examples", action="store_true", help="print one packet sequence per rule seen")
    args = ap.parse_args()
    pairs = args.pairs.split(",")
    if any(p not in PAIRS for p in pairs):
        ap.error(f"--pairs: each one of {', '.join(PAIRS)}")
    # Build once, with the output shown, so that the runs below time only themselves.
    if subprocess.run(CARGO + ["--no-run"], cwd=ROOT).returncode != 0:
        return 2
    print(f"{time.strftime('%Y-%m-%d')}, mosquitto {mosquitto_version()}, {args.messages} messages a run\n")
    head = ["publisher", "subscriber", "restarts", "seconds", "lost", "duplicates"] + RULES + ["result"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    ok = True
    seen = []
    notes = []
    for n, pair in enumerate(pairs * args.rounds, 1):
        figures, examples, passed = run(pair, args.messages)
        ok &= passed
        if figures is None:
            print(f"| {pair} | (no summary: see the output above) |")
            continue
        row = [figures["pub"], figures["sub"], figures["restarts"], figures["seconds"], figures["lost"]]
        row += [figures["duplicates"]] + [figures[r] for r in RULES] + ["pass" if passed else "FAIL"]
        print("| " + " | ".join(row) + " |", flush=True)
        if figures["lost_causes"]:
            notes.append(f"run {n}, {pair}: lost {figures['lost_causes']}")
        if examples:
            seen.append((n, pair, examples))
    for note in notes:
        print(f"\n{note}")
    for n, pair, examples in seen if args.examples else []:
        print(f"\nrun {n}, {pair}:\n{examples.rstrip()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
