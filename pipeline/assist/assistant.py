"""Agent assist: what the organisation already knows, next to the item an agent opened.

Similar past cases come from a vector index over the resolved history (``classifiers.similar``)
that follows the store: ``SimilarCases.refresh`` appends what was resolved since the last look,
and refits from its own rows when the history has doubled. Suggested replies are the operators'
templates for the item's topic and language, filled with the post's entities and ranked by how
many of the similar cases were resolved with them. Knowledge articles are ranked by TF-IDF
similarity to the post, same topic first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from classifiers.similar import SimilarIndex
from pipeline.assist_records import (
    PLACEHOLDER,
    Assistance,
    KnowledgeArticle,
    Outcome,
    ReplyTemplate,
    SimilarCase,
    SuggestedReply,
    Tone,
)
from pipeline.records import AuditEntry, QueueItem, utcnow
from pipeline.store.interface import Store

TEMPLATES = "assist_template"
ARTICLES = "assist_article"
REFIT_GROWTH = 2.0
REPLY_MATCH = 0.6
TOPIC_BONUS = 0.2
PLACEHOLDER_HINTS = {"order_number": "[order number]", "product": "[product]", "handle": "[name]"}


def outcome_of(entries: Sequence[AuditEntry]) -> Outcome:
    """How a resolved case went, from its audit trail."""
    actions = {e.action for e in entries}
    if "reopen" in actions:
        return "reopened"
    if "escalate" in actions:
        return "escalated"
    return "resolved_first_reply"


class SimilarCases:
    """The similar-cases index, kept in step with the resolved items in the store."""

    def __init__(self, store: Store, index: SimilarIndex | None = None) -> None:
        self.store = store
        self._template = index or SimilarIndex()
        self._index: SimilarIndex | None = None
        self._fitted_rows = 0
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}
        self.items: list[QueueItem] = []
        self._languages: np.ndarray = np.array([], dtype=object)
        self._watermark: datetime | None = None

    def __len__(self) -> int:
        return len(self.items)

    def refresh(self) -> int:
        """Take in items resolved since the last refresh; how many were new to the index."""
        with self._lock:
            resolved = self.store.resolved_since(self._watermark)
            fresh: list[QueueItem] = []
            for item in resolved:
                if item.resolution is None:
                    continue
                row = self._rows.get(item.id)
                if row is None:
                    self._rows[item.id] = len(self.items)
                    self.items.append(item)
                    fresh.append(item)
                else:
                    self.items[row] = item  # resolved again: its latest reply
                at = item.resolution.at
                self._watermark = at if self._watermark is None else max(self._watermark, at)
            if fresh:
                self._languages = np.array([i.language for i in self.items], dtype=object)
                if self._index is None or len(self.items) >= REFIT_GROWTH * self._fitted_rows:
                    self._refit()
                else:
                    self._index.add([i.text for i in fresh], [i.topic for i in fresh])
            return len(fresh)

    def _refit(self) -> None:
        index = SimilarIndex(**self._template.get_params())
        index.fit([i.text for i in self.items], [i.topic for i in self.items])
        self._index = index
        self._fitted_rows = len(self.items)

    def similar(self, item: QueueItem, k: int = 5) -> list[SimilarCase]:
        """The ``k`` most similar resolved cases in the item's language, its topic first."""
        with self._lock:
            if self._index is None:
                return []
            allowed = self._languages == item.language
            own = self._rows.get(item.id)
            if own is not None:
                allowed[own] = False
            found = self._index.query(item.text, k, allowed, first_topic=item.topic)
            cases = [(self.items[nb.row], nb.score) for nb in found]
        trails: dict[str, list[AuditEntry]] = {}
        for entry in self.store.audit_of_items([c.id for c, _ in cases]):
            trails.setdefault(entry.item_id or "", []).append(entry)
        return [
            SimilarCase(
                item_id=case.id,
                score=round(score, 4),
                text=case.text,
                topic=case.topic,
                language=case.language,
                reply=case.resolution.reply if case.resolution else "",
                resolved_by=case.resolution.by if case.resolution else "",
                outcome=outcome_of(trails.get(case.id, [])),
            )
            for case, score in cases
        ]


def post_fields(post: dict[str, Any] | None) -> dict[str, str]:
    """Placeholder values found in a stored post: its first order number and product, and the
    author's handle."""
    if post is None:
        return {}
    values: dict[str, str] = {}
    for entity in post.get("entities", []):
        kind = entity.get("kind")
        if kind in ("order_number", "product") and kind not in values:
            values[kind] = entity["text"]
    handle = (post.get("post", {}).get("author") or {}).get("handle")
    if handle:
        values["handle"] = f"@{handle.lstrip('@')}"
    return values


def fill(template: ReplyTemplate, values: dict[str, str]) -> tuple[str, list[str]]:
    """The template with the post's values in; placeholders the post cannot fill stay as a
    bracketed hint for the agent, and are listed."""
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        missing.append(name)
        return PLACEHOLDER_HINTS.get(name, f"[{name}]")

    return PLACEHOLDER.sub(one, template.body), missing


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", PLACEHOLDER.sub(" ", text).lower()))


def resolved_with(template: ReplyTemplate, reply: str) -> bool:
    """A reply counts as sent from the template when most of the template's words are in it."""
    words = _words(template.body)
    return bool(words) and len(words & _words(reply)) / len(words) >= REPLY_MATCH


TONE_CUES: dict[Tone, str] = {
    "angry": "customer is angry: acknowledge the problem and apologise first",
    "unhappy": "customer is unhappy: acknowledge first, then explain the next step",
    "pleased": "customer is pleased: thank them",
}


def tone_of(post: dict[str, Any] | None) -> Tone | None:
    """How the customer feels, from the post's sentiment (and emotion, if scored)."""
    if post is None:
        return None
    sentiment = post.get("sentiment") or {}
    negative = float((sentiment.get("probabilities") or {}).get("negative", 0.0))
    emotion = (post.get("emotion") or {}).get("label")
    urgency = (post.get("urgency") or {}).get("label")
    if emotion == "anger" or (negative >= 0.6 and urgency in ("high", "critical")):
        return "angry"
    if emotion in ("sadness", "fear") or negative >= 0.5:
        return "unhappy"
    if emotion in ("joy", "optimism") or sentiment.get("label") == "positive":
        return "pleased"
    return None


def tone_cue(post: dict[str, Any] | None) -> str | None:
    """One line on how to open the reply (the console shows it in the agent's language)."""
    tone = tone_of(post)
    return None if tone is None else TONE_CUES[tone]


class Assistant:
    """Templates and knowledge kept by operators, and the assistance shown with an item."""

    def __init__(self, store: Store, cases: SimilarCases | None = None) -> None:
        self.store = store
        self.cases = cases or SimilarCases(store)

    # ---- templates

    def templates(
        self, topic: str | None = None, language: str | None = None
    ) -> list[ReplyTemplate]:
        where = {k: v for k, v in (("topic", topic), ("language", language)) if v is not None}
        found = [ReplyTemplate.model_validate(d) for d in self.store.find_records(TEMPLATES, where)]
        return sorted(found, key=lambda t: t.id)

    def template(self, template_id: str) -> ReplyTemplate | None:
        doc = self.store.get_record(TEMPLATES, template_id)
        return None if doc is None else ReplyTemplate.model_validate(doc)

    def save_template(self, template: ReplyTemplate, by: str) -> ReplyTemplate:
        saved = template.model_copy(update={"updated_by": by, "updated_at": utcnow()})
        self.store.put_record(TEMPLATES, saved.id, saved.model_dump(mode="json"))
        self._audit(by, "template_saved", {"template": saved.id})
        return saved

    def delete_template(self, template_id: str, by: str) -> bool:
        deleted = self.store.delete_record(TEMPLATES, template_id)
        if deleted:
            self._audit(by, "template_deleted", {"template": template_id})
        return deleted

    # ---- knowledge

    def articles(self, language: str | None = None) -> list[KnowledgeArticle]:
        where = {} if language is None else {"language": language}
        found = self.store.find_records(ARTICLES, where)
        return sorted((KnowledgeArticle.model_validate(d) for d in found), key=lambda a: a.id)

    def save_article(self, article: KnowledgeArticle, by: str) -> KnowledgeArticle:
        saved = article.model_copy(update={"updated_by": by, "updated_at": utcnow()})
        self.store.put_record(ARTICLES, saved.id, saved.model_dump(mode="json"))
        self._audit(by, "article_saved", {"article": saved.id})
        return saved

    def delete_article(self, article_id: str, by: str) -> bool:
        deleted = self.store.delete_record(ARTICLES, article_id)
        if deleted:
            self._audit(by, "article_deleted", {"article": article_id})
        return deleted

    def knowledge_for(self, item: QueueItem, k: int = 3) -> list[KnowledgeArticle]:
        """The articles in the item's language most like the post, those of its topic first."""
        articles = self.articles(item.language)
        if not articles:
            return []
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        docs = normalize(
            vectorizer.fit_transform([f"{a.title} {a.title} {a.body}" for a in articles])
        )
        query = normalize(vectorizer.transform([item.text]))
        scores = (docs @ query.T).toarray().ravel()
        scores += [TOPIC_BONUS * (item.topic in a.topics) for a in articles]
        order = np.argsort(-scores, kind="stable")[:k]
        return [articles[i] for i in order if scores[i] > 0]

    # ---- suggestions

    def suggest(
        self, item: QueueItem, post: dict[str, Any] | None, similar: Sequence[SimilarCase]
    ) -> list[SuggestedReply]:
        values = post_fields(post)
        suggestions = []
        for template in self.templates(item.topic, item.language):
            text, missing = fill(template, values)
            used = sum(resolved_with(template, case.reply) for case in similar)
            suggestions.append(
                SuggestedReply(
                    template_id=template.id,
                    title=template.title,
                    text=text,
                    missing=missing,
                    resolved_similar=used,
                )
            )
        return sorted(suggestions, key=lambda s: (-s.resolved_similar, len(s.missing)))

    def assist(self, item: QueueItem, k: int = 5) -> Assistance:
        self.cases.refresh()
        post = self.store.get_post(item.id)
        similar = self.cases.similar(item, k)
        return Assistance(
            item_id=item.id,
            tone=tone_of(post),
            tone_cue=tone_cue(post),
            similar=similar,
            replies=self.suggest(item, post, similar),
            knowledge=self.knowledge_for(item),
        )

    def _audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        entry = AuditEntry(at=utcnow(), actor=actor, action=action, detail=detail)
        self.store.record_audit([entry])
