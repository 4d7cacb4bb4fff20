"""The priority's reasons in the interface language.

The worker writes reasons once, in English, into the stored post and queue item (the API, the
CLI and audits read them as written). The Chinese console shows them in Chinese: each reason has
one of a few shapes (``pipeline.priority``, ``classifiers.triager.explained``), so each shape is
rewritten by its own template, the evidence words kept as the post wrote them. A reason of a
shape not listed here is shown as written, so a new one is visible, never lost.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

LEVELS_ZH = {"low": "低", "medium": "中", "high": "高", "critical": "危急"}
TOPICS_ZH = {
    "account": "账户",
    "billing": "账单",
    "delivery": "配送",
    "product_defect": "产品故障",
    "general": "一般",
    "praise": "表扬",
}
SIGNALS_ZH = {
    "safety": "安全",
    "threat": "威胁",
    "legal action": "法律行动",
    "data breach or account takeover": "数据泄露或账号被盗",
    "outage hitting many": "大范围故障",
    "money lost": "钱款损失",
    "locked out": "无法登录",
    "repeated contact": "多次联系",
    "churn threat": "流失威胁",
    "complaint threat": "投诉威胁",
    "hygiene": "卫生与异物",
}


def _words(listed: str) -> str:
    """``'a', "b's"`` (Python reprs, as the worker wrote them) as ``“a”、“b's”``."""
    try:
        found = ast.literal_eval(f"[{listed}]")
    except (ValueError, SyntaxError):
        return listed
    return "、".join(f"“{w}”" for w in found if isinstance(w, str))


def _because(evidence: str | None) -> str:
    return f"，依据：{_words(evidence)}" if evidence else ""


ZH: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"urgency (\w+) \((\d+%)\)(?: from (.*))?"),
        lambda m: f"紧急度：{LEVELS_ZH.get(m[1], m[1])}（{m[2]}）{_because(m[3])}",
    ),
    (
        re.compile(r"urgency (\w+) \(expected ([\d.]+)\)"),
        lambda m: f"紧急度：{LEVELS_ZH.get(m[1], m[1])}（期望值 {m[2]}）",
    ),
    (
        re.compile(r"signal (.+): (.+) \((\w+)\)"),
        lambda m: (
            f"信号{_words(m[1])}：{SIGNALS_ZH.get(m[2], m[2])}（{LEVELS_ZH.get(m[3], m[3])}）"
        ),
    ),
    (re.compile(r"negative sentiment \((\d+%)\)"), lambda m: f"负面情绪（{m[1]}）"),
    (
        re.compile(r"reach ([\d,]+) followers(, verified)?"),
        lambda m: f"影响力：{m[1]} 位关注者{'，已认证' if m[2] else ''}",
    ),
    (re.compile(r"waiting ([\d.]+) h"), lambda m: f"已等待 {m[1]} 小时"),
    (re.compile(r"customer tier (\S+)"), lambda m: f"客户等级：{m[1]}"),
    (
        re.compile(r"first-response SLA breached (\d+) min ago"),
        lambda m: f"首次响应时限已超出 {m[1]} 分钟",
    ),
    (
        re.compile(r"first-response SLA: (\d+) min left"),
        lambda m: f"首次响应时限剩余 {m[1]} 分钟",
    ),
    (re.compile(r"part of a spike"), lambda m: "属于突发高峰"),
    (
        re.compile(r"topic (\w+) from (.*)"),
        lambda m: f"主题：{TOPICS_ZH.get(m[1], m[1])}{_because(m[2])}",
    ),
]


def reason_text(reason: str, language: str) -> str:
    """One reason as the interface shows it in ``language`` (a Jinja2 filter)."""
    if language != "zh":
        return reason
    for pattern, template in ZH:
        m = pattern.fullmatch(reason)
        if m:
            return template(m)
    return reason
