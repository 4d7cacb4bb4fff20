"""Interface text in English and Chinese; the visitor's choice is kept in their session.

Labels the models and the queue produce (topics, urgency, sentiment, statuses, channels) are
translated through ``label``; the priority's reasons, which are English sentences with numbers,
through ``reason``, pattern by pattern, so a reason nobody translated yet shows as it is.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

LANGUAGES = {"en": "English", "zh": "中文"}

TEXT: dict[str, dict[str, str]] = {
    "app": {"en": "Social triage", "zh": "社交分诊"},
    "agent": {"en": "Agent console", "zh": "客服工作台"},
    "marketing": {"en": "Marketing", "zh": "市场洞察"},
    "operator": {"en": "Operations", "zh": "运维监控"},
    "sign_in": {"en": "Sign in", "zh": "登录"},
    "sign_out": {"en": "Sign out", "zh": "退出"},
    "name": {"en": "Name", "zh": "用户名"},
    "password": {"en": "Password", "zh": "密码"},
    "wrong_login": {"en": "Wrong name or password.", "zh": "用户名或密码错误。"},
    "queue": {"en": "Queue, most urgent first", "zh": "队列（按紧急程度）"},
    "claim_next": {"en": "Claim next item", "zh": "领取下一条"},
    "nothing_to_claim": {"en": "Nothing to claim right now.", "zh": "目前没有可领取的条目。"},
    "priority": {"en": "Priority", "zh": "优先级"},
    "topic": {"en": "Topic", "zh": "主题"},
    "urgency": {"en": "Urgency", "zh": "紧急度"},
    "sentiment": {"en": "Sentiment", "zh": "情绪"},
    "emotion": {"en": "Emotion", "zh": "情感"},
    "emotion_anger": {"en": "anger", "zh": "愤怒"},
    "emotion_fear": {"en": "fear", "zh": "担忧"},
    "emotion_sadness": {"en": "sadness", "zh": "失望"},
    "emotion_joy": {"en": "joy", "zh": "喜悦"},
    "emotion_neutral": {"en": "neutral", "zh": "平静"},
    "language": {"en": "Language", "zh": "语言"},
    "source": {"en": "Source", "zh": "来源"},
    "status": {"en": "Status", "zh": "状态"},
    "holder": {"en": "Held by", "zh": "处理人"},
    "why": {"en": "Why it is urgent", "zh": "紧急原因"},
    "sla": {"en": "SLA", "zh": "时限"},
    "post": {"en": "Post", "zh": "帖子"},
    "triage": {"en": "Triage", "zh": "分诊结果"},
    "models": {"en": "Model versions", "zh": "模型版本"},
    "no_flow_runs": {"en": "No flow has run yet.", "zh": "尚无流程运行。"},
    "history": {"en": "Customer history", "zh": "客户历史"},
    "no_history": {"en": "No earlier posts from this customer.", "zh": "该客户没有更早的帖子。"},
    "replies": {"en": "Replies sent", "zh": "已发送的回复"},
    "demo_outbox": {
        "en": "demo outbox: recorded, nobody contacted",
        "zh": "演示发件箱：已记录，未联系任何人",
    },
    "escalations": {"en": "Open escalations", "zh": "未结升级"},
    "no_escalations": {"en": "None.", "zh": "无。"},
    "assist": {"en": "Assist", "zh": "辅助"},
    "suggested_replies": {"en": "Suggested replies", "zh": "建议回复"},
    "resolved_similar": {"en": "resolved similar cases:", "zh": "解决过的相似案例："},
    "fill_in": {"en": "fill in:", "zh": "待填写："},
    "use_reply": {"en": "Use this reply", "zh": "使用此回复"},
    "no_suggestions": {"en": "No reply template for this topic.", "zh": "该主题没有回复模板。"},
    "similar_cases": {"en": "Similar past cases", "zh": "相似历史案例"},
    "no_similar": {"en": "No similar resolved case yet.", "zh": "暂无相似的已结案例。"},
    "their_reply": {"en": "reply", "zh": "回复"},
    "outcome_resolved_first_reply": {"en": "resolved on first reply", "zh": "首次回复即解决"},
    "outcome_escalated": {"en": "escalated", "zh": "已升级"},
    "outcome_reopened": {"en": "reopened", "zh": "被重新打开"},
    "knowledge": {"en": "Knowledge", "zh": "知识库"},
    "no_knowledge": {"en": "No matching article.", "zh": "没有匹配的文章。"},
    "tone_angry": {
        "en": "Customer is angry: acknowledge the problem and apologise first.",
        "zh": "客户很生气：先承认问题并道歉。",
    },
    "tone_unhappy": {
        "en": "Customer is unhappy: acknowledge first, then explain the next step.",
        "zh": "客户不满意：先表示理解，再说明下一步。",
    },
    "tone_pleased": {"en": "Customer is pleased: thank them.", "zh": "客户很满意：向其致谢。"},
    "reply": {"en": "Reply to the customer", "zh": "回复客户"},
    "resolve": {"en": "Send reply and resolve", "zh": "发送回复并结案"},
    "release": {"en": "Release back to the queue", "zh": "退回队列"},
    "relabel": {"en": "Correct the topic", "zh": "更正主题"},
    "save_label": {"en": "Save correction", "zh": "保存更正"},
    "escalate": {"en": "Escalate", "zh": "升级处理"},
    "channel": {"en": "Channel", "zh": "渠道"},
    "phone": {"en": "Phone", "zh": "电话"},
    "video": {"en": "Video call", "zh": "视频通话"},
    "email": {"en": "Email", "zh": "电子邮件"},
    "note": {"en": "Note", "zh": "备注"},
    "yours": {"en": "You hold this item.", "zh": "此条目由你处理。"},
    "held_by_other": {"en": "Held by another agent", "zh": "已被其他客服领取"},
    "not_held": {"en": "Nobody holds this item.", "zh": "此条目无人领取。"},
    "lease_until": {"en": "Lease until", "zh": "领取有效至"},
    "incidents": {"en": "Incidents", "zh": "事件"},
    "resolve_all": {"en": "Reply to all and resolve", "zh": "统一回复并结案"},
    "no_incidents": {"en": "No incidents.", "zh": "没有事件。"},
    "overdue": {"en": "overdue", "zh": "已超时"},
    "left": {"en": "left", "zh": "剩余"},
    "volume": {"en": "Posts over time (spikes marked)", "zh": "帖子量随时间变化（标出峰值）"},
    "spikes": {"en": "Spikes", "zh": "峰值"},
    "rising": {"en": "Rising topics", "zh": "上升主题"},
    "sentiment_by_topic": {"en": "Sentiment by topic", "zh": "各主题情绪"},
    "sources_languages": {"en": "Sources and languages", "zh": "来源与语言"},
    "samples": {"en": "Sample posts", "zh": "示例帖子"},
    "export": {"en": "Export CSV", "zh": "导出 CSV"},
    "report": {"en": "Trend report", "zh": "趋势报告"},
    "range": {"en": "Range", "zh": "时间范围"},
    "hours": {"en": "hours", "zh": "小时"},
    "show": {"en": "Show", "zh": "显示"},
    "health": {"en": "Pipeline health", "zh": "管道健康"},
    "posts_stored": {"en": "Posts stored", "zh": "已存帖子"},
    "open_items": {"en": "Open items by band", "zh": "各级未结条目"},
    "throughput": {"en": "Posts received per 5 minutes, last hour", "zh": "近一小时每5分钟帖子数"},
    "queued": {"en": "Queue items (all states)", "zh": "队列条目（全部状态）"},
    "lag": {"en": "Consumer lag per partition", "zh": "各分区消费延迟"},
    "dlq": {"en": "Dead-letter queue", "zh": "死信队列"},
    "reason": {"en": "Reason", "zh": "原因"},
    "reprocess": {"en": "Reprocess", "zh": "重新处理"},
    "reprocessed": {"en": "Sent back by", "zh": "已重新处理"},
    "no_dead_letters": {"en": "No dead letters.", "zh": "没有死信。"},
    "flow_runs": {"en": "Recent flow runs", "zh": "最近的流程运行"},
    "count": {"en": "Count", "zh": "数量"},
    "when": {"en": "When", "zh": "时间"},
    "forbidden": {"en": "You may not open this page.", "zh": "你无权访问此页面。"},
    "back": {"en": "Back", "zh": "返回"},
    # ---- labels: "<kind>_<value>"
    "topic_account": {"en": "account", "zh": "账户"},
    "topic_billing": {"en": "billing", "zh": "账单"},
    "topic_delivery": {"en": "delivery", "zh": "配送"},
    "topic_general": {"en": "general", "zh": "一般咨询"},
    "topic_praise": {"en": "praise", "zh": "表扬"},
    "topic_product_defect": {"en": "product defect", "zh": "产品缺陷"},
    "urgency_low": {"en": "low", "zh": "低"},
    "urgency_medium": {"en": "medium", "zh": "中"},
    "urgency_high": {"en": "high", "zh": "高"},
    "urgency_critical": {"en": "critical", "zh": "危急"},
    "sentiment_negative": {"en": "negative", "zh": "负面"},
    "sentiment_neutral": {"en": "neutral", "zh": "中性"},
    "sentiment_positive": {"en": "positive", "zh": "正面"},
    "status_open": {"en": "open", "zh": "待处理"},
    "status_claimed": {"en": "claimed", "zh": "处理中"},
    "status_snoozed": {"en": "snoozed", "zh": "已暂缓"},
    "status_resolved": {"en": "resolved", "zh": "已解决"},
    "status_pending": {"en": "pending", "zh": "待审批"},
    "status_approved": {"en": "approved", "zh": "已批准"},
    "status_denied": {"en": "denied", "zh": "已拒绝"},
    "language_en": {"en": "English", "zh": "英语"},
    "language_zh": {"en": "Chinese", "zh": "中文"},
    "source_x": {"en": "X", "zh": "X"},
    "source_twitter": {"en": "Twitter", "zh": "推特"},
    "source_reddit": {"en": "Reddit", "zh": "Reddit"},
    "source_webhook": {"en": "webhook", "zh": "网络钩子"},
    "source_sample": {"en": "sample", "zh": "示例"},
    "source_test": {"en": "test", "zh": "测试"},
    "sla_overdue": {"en": "overdue", "zh": "已超时"},
    "sla_due_soon": {"en": "due soon", "zh": "即将到期"},
    "sla_on_track": {"en": "on track", "zh": "正常"},
    # ---- the console
    "all": {"en": "all", "zh": "全部"},
    "band": {"en": "Band", "zh": "级别"},
    "search": {"en": "Search", "zh": "搜索"},
    "search_hint": {"en": "text, handle or id", "zh": "内容、用户名或编号"},
    "filter": {"en": "Filter", "zh": "筛选"},
    "clear": {"en": "Clear", "zh": "清除"},
    "customer": {"en": "Customer", "zh": "客户"},
    "age": {"en": "Age", "zh": "等待时长"},
    "of": {"en": "of", "zh": "共"},
    "previous": {"en": "Previous", "zh": "上一页"},
    "next": {"en": "Next", "zh": "下一页"},
    "send_next": {"en": "Send, resolve and next", "zh": "发送、结案并领取下一条"},
    "characters": {"en": "characters", "zh": "字符"},
    "too_long": {"en": "too long for this channel", "zh": "超出该渠道长度限制"},
    "open_escalate": {"en": "Escalate…", "zh": "升级处理…"},
    "cancel": {"en": "Cancel", "zh": "取消"},
    "shortcuts": {
        "en": "Keys: j/k move, Enter open, c claim, r reply, e escalate",
        "zh": "快捷键：j/k 移动，回车打开，c 领取，r 回复，e 升级",
    },
    "ago": {"en": "{} ago", "zh": "{}前"},
    "just_now": {"en": "just now", "zh": "刚刚"},
    "min": {"en": "min", "zh": "分钟"},
    "h": {"en": "h", "zh": "小时"},
    "d": {"en": "d", "zh": "天"},
    "overdue_by": {"en": "overdue {}", "zh": "已超时 {}"},
    "due_in": {"en": "due in {}", "zh": "剩余 {}"},
    "followers": {"en": "followers", "zh": "粉丝"},
    "credit": {"en": "Goodwill credit or refund", "zh": "补偿金或退款"},
    "flash_resolved": {"en": "{item} resolved", "zh": "{item} 已结案"},
    "flash_released": {"en": "{item} released", "zh": "{item} 已退回队列"},
    "flash_relabelled": {
        "en": "topic of {item} corrected to {topic}: kept for retraining",
        "zh": "{item} 的主题已更正为 {topic}：将用于重新训练",
    },
    "flash_escalated": {"en": "{item} escalated to {channel}", "zh": "{item} 已升级（{channel}）"},
    "flash_goodwill_granted": {
        "en": "{kind} of {amount} {currency} granted",
        "zh": "已发放 {amount} {currency}（{kind}）",
    },
    "flash_goodwill_pending": {
        "en": "{kind} of {amount} {currency} sent for approval: {why}",
        "zh": "{amount} {currency}（{kind}）已提交审批：{why}",
    },
    "flash_goodwill_approved": {
        "en": "{kind} of {amount} {currency} approved",
        "zh": "已批准 {amount} {currency}（{kind}）",
    },
    "flash_goodwill_denied": {
        "en": "{kind} of {amount} {currency} denied",
        "zh": "已拒绝 {amount} {currency}（{kind}）",
    },
    "decisions": {"en": "Decisions", "zh": "审批记录"},
    "approval_rule": {
        "en": "Credit or refund above {limit} {currency} needs approval; "
        "each agent may grant up to {cap} {currency} a day.",
        "zh": "超过 {limit} {currency} 的补偿或退款需要审批；"
        "每位客服每天最多可发放 {cap} {currency}。",
    },
    # ---- approvals
    "approvals": {"en": "Approvals", "zh": "审批"},
    "approval": {"en": "Approval", "zh": "审批"},
    "amount": {"en": "Amount", "zh": "金额"},
    "requested_by": {"en": "Requested by", "zh": "申请人"},
    "decided_by": {"en": "Decided by", "zh": "审批人"},
    "approve": {"en": "Approve", "zh": "批准"},
    "deny": {"en": "Deny", "zh": "拒绝"},
    "decision_reason": {"en": "Reason for the decision", "zh": "审批理由"},
    "no_approvals": {"en": "Nothing waits for approval.", "zh": "没有待审批的申请。"},
    "my_approvals": {"en": "My requests", "zh": "我的申请"},
    "request_approval": {"en": "Request credit", "zh": "申请补偿"},
    "supervisor": {"en": "Supervisor", "zh": "主管"},
    "kind_credit": {"en": "goodwill credit", "zh": "补偿金"},
    "kind_refund": {"en": "refund", "zh": "退款"},
    "kind": {"en": "Kind", "zh": "类型"},
    # ---- KPIs
    "kpis": {"en": "KPIs", "zh": "指标"},
    "first_response": {"en": "First response", "zh": "首次响应"},
    "resolution": {"en": "Resolution", "zh": "解决用时"},
    "sla_attainment": {"en": "SLA attainment", "zh": "时限达成率"},
    "backlog": {"en": "Backlog by band and age", "zh": "按级别和时长的积压"},
    "agent_load": {"en": "Per agent", "zh": "各客服"},
    "holding": {"en": "Holding now", "zh": "当前处理中"},
    "handled": {"en": "Handled", "zh": "已处理"},
    "automation_rate": {"en": "Automation rate", "zh": "自动化率"},
    "reopen_rate": {"en": "Reopen rate", "zh": "重开率"},
    "items_in_range": {"en": "Items in range", "zh": "范围内条目"},
    "days": {"en": "days", "zh": "天"},
    "p50": {"en": "median", "zh": "中位数"},
    "p90": {"en": "90th percentile", "zh": "第90百分位"},
    "minutes": {"en": "minutes", "zh": "分钟"},
    "no_data": {"en": "No data in this range.", "zh": "此范围内没有数据。"},
    "age_lt1h": {"en": "under 1 h", "zh": "1小时内"},
    "age_1_4h": {"en": "1-4 h", "zh": "1-4小时"},
    "age_4_24h": {"en": "4-24 h", "zh": "4-24小时"},
    "age_gt24h": {"en": "over 24 h", "zh": "超过24小时"},
}

# the marketing and operator faces' own words (kept apart so the console's can grow beside them)
TEXT.update(
    {
        "status_emerging": {"en": "emerging", "zh": "出现"},
        "status_peaking": {"en": "peaking", "zh": "高峰"},
        "status_fading": {"en": "fading", "zh": "回落"},
        "status_ended": {"en": "ended", "zh": "已结束"},
        "posts_in_span": {"en": "posts in its buckets", "zh": "条帖子（所在时段）"},
        "rising_how": {
            "en": "Rate in the last third of the range against the rest.",
            "zh": "时间范围最后三分之一的速率与其余部分相比。",
        },
        "change": {"en": "Change", "zh": "变化"},
        "new": {"en": "new", "zh": "新出现"},
        "flows": {"en": "Flows", "zh": "流程"},
        "flow": {"en": "Flow", "zh": "流程"},
        "schedule": {"en": "Schedule", "zh": "计划"},
        "last_run": {"en": "Last run", "zh": "上次运行"},
        "state": {"en": "State", "zh": "状态"},
        "next_run": {"en": "Next run", "zh": "下次运行"},
        "flow_state_ok": {"en": "ok", "zh": "正常"},
        "flow_state_failed": {"en": "failed", "zh": "失败"},
        "flow_state_overdue": {"en": "overdue", "zh": "已逾期"},
        "flow_state_never_ran": {"en": "never ran", "zh": "从未运行"},
        "flow_state_on_demand": {"en": "on demand", "zh": "按需"},
        "letters": {"en": "dead letters", "zh": "条死信"},
        "flows_hint": {
            "en": "Scheduled flows run under Prefect: start them with `triage flows serve`.",
            "zh": "计划流程由 Prefect 运行：请用 `triage flows serve` 启动。",
        },
        "healthy": {"en": "Everything is healthy.", "zh": "一切正常。"},
        "unhealthy": {"en": "Needs attention", "zh": "需要处理"},
        "fix_first": {"en": "fix the input at its source", "zh": "请在来源处修正输入"},
        "connectors": {"en": "Connectors", "zh": "连接器"},
        "network": {"en": "Network", "zh": "平台"},
        "connector_reads": {"en": "Reads", "zh": "读取"},
        "last_saved": {"en": "Last saved", "zh": "上次保存"},
        "newest_post": {"en": "Newest post", "zh": "最新帖子"},
        "connector_live": {"en": "live", "zh": "实时"},
        "connector_behind": {"en": "behind by {n} min", "zh": "落后 {n} 分钟"},
        "connector_quiet": {"en": "nothing new for {n} min", "zh": "{n} 分钟无新内容"},
        "connector_paused": {"en": "paused for rate limit until {t}", "zh": "因限流暂停至 {t}"},
        "connector_never_ran": {"en": "never ran", "zh": "从未运行"},
    }
)


def translate(language: str, key: str) -> str:
    """The text for ``key``; an unknown key shows itself, so a gap is visible, never a crash."""
    entry = TEXT.get(key)
    if entry is None:
        return key
    return entry.get(language) or entry["en"]


def label(language: str, kind: str, value: str | None) -> str:
    """A model's or the queue's label in the interface language; unknown labels show as they
    are (a new topic of a retrained model must not break the page)."""
    if value is None:
        return ""
    entry = TEXT.get(f"{kind}_{value}")
    return value if entry is None else entry.get(language) or entry["en"]


# The lexicon's signal kinds (classifiers/lexicons/urgency.tsv), as a "signal" reason names them.
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


def quoted(listed: str) -> str:
    """``'a', "b's"`` (Python reprs, as the worker writes evidence) as ``“a”、“b's”``."""
    try:
        found = ast.literal_eval(f"[{listed}]")
    except (ValueError, SyntaxError):
        return listed
    return "、".join(f"“{w}”" for w in found if isinstance(w, str))


def _zh_reasons() -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]:
    def urgency(m: re.Match[str] | str) -> str:
        return label("zh", "urgency", m if isinstance(m, str) else m[1])

    return [
        (re.compile(r"^urgency (\w+) \((\d+%)\)$"), lambda m: f"紧急度{urgency(m)}（{m[2]}）"),
        (
            re.compile(r"^urgency (\w+) \(expected ([\d.]+)\)$"),
            lambda m: f"紧急度{urgency(m)}（期望值 {m[2]}）",
        ),
        (re.compile(r"^negative sentiment \((\d+%)\)$"), lambda m: f"负面情绪（{m[1]}）"),
        (
            re.compile(r"^reach ([\d,]+) followers(, verified)?$"),
            lambda m: f"影响力：{m[1]} 粉丝{'，已认证' if m[2] else ''}",
        ),
        (re.compile(r"^waiting ([\d.]+) h$"), lambda m: f"已等待 {m[1]} 小时"),
        (re.compile(r"^customer tier (\w+)$"), lambda m: f"客户等级 {m[1]}"),
        (
            re.compile(r"^first-response SLA breached (-?\d+) min ago$"),
            lambda m: f"首次响应时限已超 {m[1]} 分钟",
        ),
        (
            re.compile(r"^first-response SLA: (-?\d+) min left$"),
            lambda m: f"首次响应时限剩余 {m[1]} 分钟",
        ),
        (re.compile(r"^part of a spike$"), lambda m: "属于突发峰值"),
        (
            re.compile(r"^signal (.+): (.+) \((\w+)\)$"),
            lambda m: f"信号{quoted(m[1])}：{SIGNALS_ZH.get(m[2], m[2])}（{urgency(m[3])}）",
        ),
        (re.compile(r"^topic (\w+)$"), lambda m: f"主题：{label('zh', 'topic', m[1])}"),
        (re.compile(r"^over the (\S+) (\w+) limit$"), lambda m: f"超过 {m[1]} {m[2]} 的限额"),
        (
            re.compile(r"^over the daily cap of (\S+) (\w+) \((\S+) granted today\)$"),
            lambda m: f"超过每日上限 {m[1]} {m[2]}（今日已发放 {m[3]}）",
        ),
    ]


REASONS = {"zh": _zh_reasons()}
EVIDENCE = re.compile(r"^(.*?) from ('.*)$")  # "<reason> from 'word', 'word'": the model's words
EVIDENCE_TEXT = {"en": " from {}", "zh": "（依据：{}）"}
EVIDENCE_WORDS = {"zh": quoted}


def reason(language: str, text: str) -> str:
    """One priority reason in the interface language, the words it rests on kept as written."""
    head, evidence = text, ""
    if (found := EVIDENCE.match(text)) is not None:
        words = EVIDENCE_WORDS.get(language, str)(found[2])
        head, evidence = found[1], EVIDENCE_TEXT.get(language, " from {}").format(words)
    for pattern, render in REASONS.get(language, []):
        match = pattern.match(head)
        if match:
            return render(match) + evidence
    return head + evidence
