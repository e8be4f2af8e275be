from __future__ import annotations


def sandbox_campaign_save(*, campaign_id: str, passcode: str, coins: int = 1000) -> None:
    raise NotImplementedError("The sandbox is being built.")
