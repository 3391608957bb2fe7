"""What the fake upstream says, and how it cuts text into pieces like a model."""

from __future__ import annotations

import re
from typing import Any

_CJK = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
_PIECE = re.compile(
    rf"[{_CJK}]|\n+| ?[^\W{_CJK}]+| ?[^\w\s{_CJK}]| +|[\s\S]",
)

DEMO = (
    "Hello! This reply comes from gptrelay's **demo upstream**: it is simulated, "
    "not written by a model. Your message had {chars} characters. "
    "Point `OPENAI_API_KEY` at a real key to talk to OpenAI.\n\n"
    "你好！这是演示模式的模拟回复。"
)

MARKDOWN = """# A heading

Here is a list:

- one
- two

| name | value |
| --- | --- |
| alpha | 1 |
| beta | 2 |

```python
def greet(name: str) -> str:
    return f"hello {name}"
```

Euler: $e^{i\\pi} + 1 = 0$ and a block:

$$
\\int_0^1 x^2\\,dx = \\frac{1}{3}
$$
"""

CHINESE = "你好，世界！这是一个测试：流式输出中文、表情😀和标点。"

XSS = (
    'Danger: <img src=x onerror="window.__xss=1"> and '
    "<script>window.__xss=2</script> and "
    "[a link](javascript:window.__xss=3) and "
    '<a href="javascript:window.__xss=4">click</a> and '
    '<svg onload="window.__xss=5"></svg> done.'
)

WHITESPACE_PIECES = ["Line", " ", "one", "\n\n", "Line", " ", "two", "\n", " "]

LONG = " ".join(f"Sentence {n} of a long answer." for n in range(1, 41))


def pieces(text: str) -> list[str]:
    """Cut text into token-like pieces whose concatenation is exactly ``text``."""
    return _PIECE.findall(text)


def text_for(name: str, body: Any) -> str:
    if name == "markdown":
        return MARKDOWN
    if name == "chinese" or name == "split-utf8":
        return CHINESE
    if name == "xss":
        return XSS
    if name == "long":
        return LONG
    chars = 0
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        from gptrelay.fake.scenarios import message_text

        chars = sum(len(message_text(m)) for m in body["messages"])
    return DEMO.format(chars=chars)
