import argparse
import datetime as dt
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from sandbox.models import Fault, SandboxCampaign
from sandbox.services import UNCHANGED, sandbox_campaign_save, sandbox_rewards_fill


def _latency(value: str) -> int | tuple[int, int]:
    low, sep, high = value.partition("-")
    try:
        return (int(low), int(high)) if sep else int(low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"N or MIN-MAX in milliseconds, not {value!r}") from None


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"a number from 0 to 1, not {value!r}")
    return rate


def _expires(value: str) -> dt.date | None:
    if value.lower() == "never":
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"YYYY-MM-DD or 'never', not {value!r}") from None


def campaign_describe(campaign: SandboxCampaign) -> list[str]:
    """What a sandbox campaign holds, line by line; the passcode only as 'set'."""
    if campaign.latency_ms_max == 0:
        latency = "none"
    elif campaign.latency_ms_min == campaign.latency_ms_max:
        latency = f"{campaign.latency_ms_max} ms"
    else:
        latency = f"{campaign.latency_ms_min}-{campaign.latency_ms_max} ms"
    fault = campaign.fault
    if campaign.fault != Fault.NONE:
        fault += f" at rate {campaign.fault_rate:g}"
        if campaign.fault == Fault.TIMEOUT_AFTER:
            fault += f", answer held {campaign.fault_delay:g} s"
        elif campaign.fault == Fault.COMMIT_LATE:
            fault += f", reward made after {campaign.fault_delay:g} s"
    return [
        f"sandbox campaign {campaign.campaign_id}",
        "  passcode:         set (not shown)",
        f"  enabled:          {'yes' if campaign.enabled else 'no'}",
        f"  expires:          {campaign.expires or 'never'}",
        f"  moku-coins:       {campaign.coins}",
        f"  trees per reward: {campaign.trees_per_reward}",
        f"  latency:          {latency}",
        f"  fault:            {fault}",
        f"  rewards made:     {campaign.rewards.count()}",
    ]


class Command(BaseCommand):
    help = (
        "Create or update a campaign of the built-in Mokugift sandbox, and print what it holds "
        "(never the passcode). A new campaign needs a passcode; an update may leave it out. "
        "Give it with --passcode-stdin: a --passcode on the command line shows in `ps` to "
        "every user of the machine."
    )

    def add_arguments(self, parser):
        parser.add_argument("campaign_id")
        passcode = parser.add_mutually_exclusive_group()
        passcode.add_argument(
            "--passcode",
            help="The sandbox campaign's passcode. Other users of the machine can read it in "
            "`ps`: prefer --passcode-stdin.",
        )
        passcode.add_argument(
            "--passcode-stdin",
            action="store_true",
            help="Read the passcode from standard input (its first line), where `ps` does not "
            "show it.",
        )
        parser.add_argument("--coins", type=int, help="Moku-coin balance: one per reward.")
        parser.add_argument("--trees-per-reward", type=int)
        enabled = parser.add_mutually_exclusive_group()
        enabled.add_argument("--disabled", action="store_true", help="Calls get error 103.")
        enabled.add_argument("--enabled", action="store_true")
        parser.add_argument(
            "--expires", type=_expires, default=UNCHANGED, help="YYYY-MM-DD (UTC) or 'never'."
        )
        parser.add_argument("--latency-ms", type=_latency, help="N, or MIN-MAX for a random delay.")
        parser.add_argument("--fault", choices=Fault.values)
        parser.add_argument("--fault-rate", type=_rate, help="Share of create calls hit, 0..1.")
        parser.add_argument(
            "--add-rewards",
            type=int,
            default=0,
            metavar="N",
            help="Add N rewards at once (recipients bulk-N@example.com), for benchmarks.",
        )
        parser.add_argument(
            "--fault-delay",
            type=float,
            help="Seconds timeout-after holds the answer back, and commit-late the making of "
            "the reward (default 70).",
        )

    def handle(self, *args, **options):
        passcode = options["passcode"]
        if options["passcode_stdin"]:
            passcode = sys.stdin.readline().rstrip("\r\n")
        enabled = None
        if options["disabled"]:
            enabled = False
        elif options["enabled"]:
            enabled = True
        try:
            campaign = sandbox_campaign_save(
                campaign_id=options["campaign_id"],
                passcode=passcode or None,
                coins=options["coins"],
                trees_per_reward=options["trees_per_reward"],
                enabled=enabled,
                expires=options["expires"],
                latency_ms=options["latency_ms"],
                fault=options["fault"],
                fault_rate=options["fault_rate"],
                fault_delay=options["fault_delay"],
            )
        except ValidationError as e:
            raise CommandError("; ".join(e.messages)) from None
        if options["add_rewards"] > 0:
            added = sandbox_rewards_fill(
                campaign_id=campaign.campaign_id, count=options["add_rewards"]
            )
            self.stdout.write(f"Added {added} rewards.")
        for line in campaign_describe(campaign):
            self.stdout.write(line)
