#!/usr/bin/env python3
"""Standalone validator for the held-back-2 evaluation set.

Uses only the standard library, plus pypdfium2 for PDF documents.
Checks: every line of questions.jsonl parses, ids are unique, required
fields are present, the kinds are known, answerable questions have an
alternative whose strings all occur in the visible text of their document,
evidence occurs too, and unanswerable questions have no answers.

Usage: python validate.py            (exit status 0 when everything passes)
       python validate.py --dump-text DOC   (print the normalised text of one doc)
"""
import html
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {"table", "definition", "number", "yesno", "prose", "option", "unanswerable"}


def normalise(s):
    s = s.replace("`", "").replace("*", "")
    s = re.sub(r"\s+", " ", s)
    return s.strip().lower()


def html_text(raw):
    raw = re.sub(r"(?is)<!--.*?-->", " ", raw)
    raw = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", raw)
    raw = re.sub(r"(?s)<[^>]*>", " ", raw)
    return html.unescape(raw)


def pdf_text(path):
    import pypdfium2 as pdfium
    doc = pdfium.PdfDocument(path)
    parts = []
    for i in range(len(doc)):
        page = doc[i]
        tp = page.get_textpage()
        parts.append(tp.get_text_range())
        tp.close()
        page.close()
    doc.close()
    return "\n".join(parts)


_cache = {}


def doc_text(rel):
    if rel in _cache:
        return _cache[rel]
    path = os.path.join(HERE, rel)
    if path.lower().endswith(".pdf"):
        text = pdf_text(path)
    else:
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8", errors="replace")
        text = html_text(raw) if path.lower().endswith((".html", ".htm")) else raw
    text = normalise(text)
    _cache[rel] = text
    return text


def alt_strings(alt):
    return [alt] if isinstance(alt, str) else list(alt)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--dump-text":
        print(doc_text(sys.argv[2]))
        return 0
    errors = []
    ids = set()
    counts = {}
    per_doc = {}
    with open(os.path.join(HERE, "questions.jsonl"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            errors.append(f"line {n}: empty line")
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {n}: JSON error {e}")
            continue
        for key in ("id", "question", "answers", "kind", "doc", "evidence"):
            if key not in q:
                errors.append(f"line {n}: missing {key}")
        qid = q.get("id")
        if qid in ids:
            errors.append(f"line {n}: duplicate id {qid}")
        ids.add(qid)
        kind = q.get("kind")
        if kind not in KINDS:
            errors.append(f"{qid}: unknown kind {kind}")
        counts[kind] = counts.get(kind, 0) + 1
        answers = q.get("answers", [])
        if not isinstance(answers, list):
            errors.append(f"{qid}: answers is not a list")
            continue
        if kind == "unanswerable":
            if answers:
                errors.append(f"{qid}: unanswerable question has answers")
            continue
        doc = q.get("doc", "")
        if not os.path.exists(os.path.join(HERE, doc)):
            errors.append(f"{qid}: missing document {doc}")
            continue
        per_doc[doc] = per_doc.get(doc, 0) + 1
        text = doc_text(doc)
        if not answers:
            errors.append(f"{qid}: answerable question without answers")
        ok = False
        for alt in answers:
            strs = alt_strings(alt)
            for s in strs:
                if not isinstance(s, str) or not s.strip():
                    errors.append(f"{qid}: bad answer string {s!r}")
                if isinstance(s, str) and any(c in s for c in "\u2018\u2019\u201c\u201d\u2013"):
                    errors.append(f"{qid}: curly quote or en dash in answer {s!r}")
            if all(isinstance(s, str) and normalise(s) in text for s in strs):
                ok = True
        if not ok:
            errors.append(f"{qid}: no answer alternative found in {doc}")
        ev = q.get("evidence", "")
        if not ev or normalise(ev) not in text:
            errors.append(f"{qid}: evidence not found in {doc}")
    for e in errors:
        print("FAIL", e)
    print("questions:", len(lines), "kinds:", dict(sorted(counts.items(), key=lambda x: str(x[0]))))
    print("answerable per document:", dict(sorted(per_doc.items())))
    print("PASSED" if not errors else f"{len(errors)} error(s)")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
