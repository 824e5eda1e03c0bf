#!/usr/bin/env python3
"""Check questions.jsonl against the frozen pages in docs/ (stdlib only)."""
import collections, html, json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {"table", "definition", "number", "yesno", "prose", "release", "unanswerable"}


def norm(s):
    s = s.replace("`", "").replace("*", "")
    return re.sub(r"\s+", " ", s).strip().lower()


def page_texts(path):
    raw = open(path, encoding="utf-8").read()
    raw = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", raw)
    cells = re.sub(r"(?is)</t[dh]>\s*<t[dh][^>]*>", " | ", raw)
    out = []
    for src in (raw, cells):
        for rep in ("", " "):  # tags removed, or replaced by a space
            out.append(norm(html.unescape(re.sub(r"<[^>]+>", rep, src))))
    return out


def main():
    errors, ids, per_doc, kinds = [], set(), collections.Counter(), collections.Counter()
    cache = {}
    lines = open(os.path.join(HERE, "questions.jsonl"), encoding="utf-8").read().splitlines()
    for n, line in enumerate(lines, 1):
        try:
            q = json.loads(line)
        except ValueError as e:
            errors.append(f"line {n}: bad JSON: {e}")
            continue
        qid = q.get("id")
        if set(q) != {"id", "question", "answers", "kind", "doc", "evidence"}:
            errors.append(f"{qid}: unexpected keys {sorted(q)}")
        if qid in ids:
            errors.append(f"{qid}: duplicate id")
        ids.add(qid)
        if q.get("kind") not in KINDS:
            errors.append(f"{qid}: bad kind {q.get('kind')}")
        kinds[q.get("kind")] += 1
        path = os.path.join(HERE, q.get("doc", ""))
        if not os.path.isfile(path):
            errors.append(f"{qid}: missing doc {q.get('doc')}")
            continue
        if path not in cache:
            cache[path] = page_texts(path)
        texts = cache[path]
        if q["kind"] == "unanswerable":
            if q["answers"] != []:
                errors.append(f"{qid}: unanswerable must have []")
            continue
        per_doc[q["doc"]] += 1
        if not q["answers"]:
            errors.append(f"{qid}: no answers")
        ok = False
        for alt in q["answers"]:
            parts = alt if isinstance(alt, list) else [alt]
            if all(any(norm(p) in t for t in texts) for p in parts):
                ok = True
            else:
                errors.append(f"{qid}: alternative {alt!r} not in page text")
        if not ok:
            errors.append(f"{qid}: no alternative found in page")
        if not any(norm(q["evidence"]) in t for t in texts):
            errors.append(f"{qid}: evidence not found verbatim")
    for d in sorted(os.listdir(os.path.join(HERE, "docs"))):
        size = os.path.getsize(os.path.join(HERE, "docs", d))
        if size > 400 * 1024:
            errors.append(f"docs/{d}: {size} bytes > 400 KB")
        c = per_doc.get("docs/" + d, 0)
        if not 2 <= c <= 4:
            errors.append(f"docs/{d}: {c} answerable questions (want 2-4)")
    print("questions:", len(lines), "kinds:", dict(kinds))
    for e in errors:
        print("FAIL", e)
    print("OK" if not errors else f"{len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
