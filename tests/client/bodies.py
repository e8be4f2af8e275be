"""Hand-written answers of the Mokugift API, as shared/mokugift-api.md describes them.

Written out in full on purpose (not produced by the sandbox's code): the client's parser is
checked against the document, not against our own server.
"""

from __future__ import annotations

from collections.abc import Iterator

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

REWARD = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Success</status>
  <transaction_id>tx-1</transaction_id>
  <reward>
    <id>r-1</id>
    <recipient_email>sally@chan.com</recipient_email>
  </reward>
</result>
"""
)

REWARD_URL = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Success</status>
  <transaction_id>tx-2</transaction_id>
  <reward>
    <id>r-2</id>
    <recipient_email>sally@chan.com</recipient_email>
    <url>http://www.mokugift.com/r/r-2</url>
  </reward>
</result>
"""
)

REWARD_URL2 = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Success</status>
  <transaction_id>tx-3</transaction_id>
  <reward>
    <id>r-3</id>
    <recipient_id>user6789</recipient_id>
    <url>http://www.mokugift.com/r/r-3</url>
  </reward>
</result>
"""
)

MULTI_REWARDS = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Success</status>
  <transaction_id>tx-4</transaction_id>
  <rewards>
    <reward><id>r-4</id><recipient_email>sally@chan.com</recipient_email></reward>
    <reward><id>r-5</id><recipient_email>john@smith.com</recipient_email></reward>
  </rewards>
</result>
"""
)

MULTI_REWARD_URLS = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Success</status>
  <transaction_id>tx-5</transaction_id>
  <rewards>
    <reward><id>r-6</id><recipient_email>sally@chan.com</recipient_email>
      <url>http://www.mokugift.com/r/r-6</url></reward>
    <reward><id>r-7</id><recipient_email>john@smith.com</recipient_email>
      <url>http://www.mokugift.com/r/r-7</url></reward>
  </rewards>
</result>
"""
)

MULTI_REWARD_URLS2_PART_FAILED = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Part_Failed</status>
  <transaction_id>tx-6</transaction_id>
  <rewards>
    <reward><id>r-8</id><recipient_id>user6789</recipient_id>
      <url>http://www.mokugift.com/r/r-8</url></reward>
  </rewards>
  <unsent_rewards>
    <unsent_reward>
      <recipient>John Smith &lt;user1234&gt;</recipient>
      <error><code>105</code><description>Lack of moku-coins</description></error>
    </unsent_reward>
    <unsent_reward>
      <recipient>user0000</recipient>
      <error><code>113</code><description>Invalid parameters</description></error>
    </unsent_reward>
  </unsent_rewards>
</result>
"""
)

MULTI_FAILED = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Failed</status>
  <transaction_id>tx-7</transaction_id>
  <unsent_rewards>
    <unsent_reward>
      <recipient>not-an-email</recipient>
      <error><code>112</code><description>Invalid email</description></error>
    </unsent_reward>
  </unsent_rewards>
  <error><code>112</code><description>Invalid email</description></error>
</result>
"""
)

QUERY = (
    DECLARATION
    + """<result>
  <version>1.0</version>
  <status>Success</status>
  <rewards>
    <reward>
      <id>r-1</id>
      <recipient_email>sally@chan.com</recipient_email>
      <date>2026-05-01 09:30:00</date>
      <tree_count>2</tree_count>
    </reward>
    <reward>
      <id>r-3</id>
      <recipient_id>user6789</recipient_id>
      <date>2026-05-02 23:59:59</date>
      <tree_count>1</tree_count>
    </reward>
  </rewards>
  <summary>
    <reward_count>2</reward_count>
    <tree_count>3</tree_count>
  </summary>
</result>
"""
)

QUERY_EMPTY = (
    DECLARATION
    + """<result><version>1.0</version><status>Success</status><rewards/>
<summary><reward_count>0</reward_count><tree_count>0</tree_count></summary></result>"""
)


def failed(code: int, description: str, *, transaction_id: str | None = None) -> str:
    transaction = f"<transaction_id>{transaction_id}</transaction_id>" if transaction_id else ""
    return (
        f"{DECLARATION}<result><version>1.0</version><status>Failed</status>{transaction}"
        f"<error><code>{code}</code><description>{description}</description></error></result>"
    )


def query_reward(number: int, *, date: str = "2026-05-01 09:30:00") -> str:
    return (
        f"<reward><id>r-{number}</id><recipient_email>user{number}@example.com</recipient_email>"
        f"<date>{date}</date><tree_count>1</tree_count></reward>\n"
    )


def query_with_date(date: str) -> str:
    return (
        f"{DECLARATION}<result><version>1.0</version><status>Success</status><rewards>"
        f"{query_reward(1, date=date)}</rewards>"
        "<summary><reward_count>1</reward_count><tree_count>1</tree_count></summary></result>"
    )


def query_chunks(count: int, *, per_chunk: int = 500) -> Iterator[bytes]:
    """An all_rewards answer of `count` rewards, made as it is read (never whole in memory)."""
    yield (
        f"{DECLARATION}<result><version>1.0</version><status>Success</status><rewards>\n"
    ).encode()
    for start in range(0, count, per_chunk):
        stop = min(count, start + per_chunk)
        yield "".join(query_reward(n) for n in range(start, stop)).encode()
    yield (
        f"</rewards><summary><reward_count>{count}</reward_count>"
        f"<tree_count>{count}</tree_count></summary></result>\n"
    ).encode()


def query_chunks_repeated(count: int, *, per_chunk: int = 500) -> Iterator[bytes]:
    """Like query_chunks, but every chunk of rewards is the same bytes object (made once), so
    that the server side costs next to nothing: reward IDs repeat, which the parser allows."""
    assert count % per_chunk == 0
    yield (
        f"{DECLARATION}<result><version>1.0</version><status>Success</status><rewards>\n"
    ).encode()
    chunk = "".join(query_reward(n) for n in range(per_chunk)).encode()
    for _ in range(count // per_chunk):
        yield chunk
    yield (
        f"</rewards><summary><reward_count>{count}</reward_count>"
        f"<tree_count>{count}</tree_count></summary></result>\n"
    ).encode()


def query_size(count: int) -> int:
    return sum(len(chunk) for chunk in query_chunks(count))


ALL_BODIES = {
    "reward": REWARD,
    "reward_url": REWARD_URL,
    "reward_url2": REWARD_URL2,
    "multi_rewards": MULTI_REWARDS,
    "multi_reward_urls": MULTI_REWARD_URLS,
    "multi_reward_urls2": MULTI_REWARD_URLS2_PART_FAILED,
    "query": QUERY,
}
