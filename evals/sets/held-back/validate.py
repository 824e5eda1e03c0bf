#!/usr/bin/env python3
"""Validate questions.jsonl of the held-back set (standalone; does not import project code).

Checks: every line parses, ids unique, required fields, known kinds, the doc exists,
unanswerable questions have no answers, and for each answerable question at least one
alternative (a string, or a list of strings that must all appear) occurs in the
document's visible text (HTML: tags stripped + html.unescape; PDF: extracted text;
whitespace collapsed, case-insensitive, backticks and * removed).
Needs pypdfium2 for the PDF (e.g. run with /work/main/.venv/bin/python).
"""
import html, json, pathlib, re, sys

HERE = pathlib.Path(__file__).resolve().parent
KINDS = {"table", "definition", "number", "yesno", "prose", "option", "release", "unanswerable"}

def visible_text(p):
    if p.suffix == ".pdf":
        import pypdfium2 as pdfium
        doc = pdfium.PdfDocument(str(p))
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    s = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix in (".html", ".htm"):
        s = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", s)
        s = re.sub(r"(?s)<!--.*?-->", " ", s)
        s = re.sub(r"(?s)<[^>]+>", " ", s)
        s = html.unescape(s)
    return s

def norm(s):
    s = s.replace("`", "").replace("*", "")
    return re.sub(r"\s+", " ", s).strip().lower()

def main():
    errors, warnings, cache, ids = [], [], {}, set()
    lines = (HERE / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    kinds = {}
    for n, line in enumerate(lines, 1):
        try:
            q = json.loads(line)
        except Exception as e:
            errors.append(f"line {n}: does not parse: {e}"); continue
        for k in ("id", "question", "answers", "kind", "doc", "evidence"):
            if k not in q:
                errors.append(f"line {n}: missing {k}")
        qid = q.get("id")
        if qid in ids:
            errors.append(f"line {n}: duplicate id {qid}")
        ids.add(qid)
        kind = q.get("kind"); kinds[kind] = kinds.get(kind, 0) + 1
        if kind not in KINDS:
            errors.append(f"{qid}: unknown kind {kind}")
        doc = HERE / q.get("doc", "")
        if not doc.is_file():
            errors.append(f"{qid}: doc missing {doc}"); continue
        if doc not in cache:
            cache[doc] = norm(visible_text(doc))
        text = cache[doc]
        answers = q.get("answers", [])
        if kind == "unanswerable":
            if answers:
                errors.append(f"{qid}: unanswerable question has answers")
            continue
        if not answers:
            errors.append(f"{qid}: no answers"); continue
        ok = False
        for alt in answers:
            parts = [alt] if isinstance(alt, str) else alt
            if all(norm(p) in text for p in parts):
                ok = True
        if not ok:
            errors.append(f"{qid}: no alternative found in {q['doc']}")
        for piece in re.split(r" \.\.\. | \| ", q.get("evidence", "")):
            if norm(piece) not in text:
                warnings.append(f"{qid}: evidence piece not verbatim: {piece[:40]!r}")
    answerable = sum(v for k, v in kinds.items() if k != "unanswerable")
    print(f"{len(lines)} questions ({answerable} answerable), kinds: {dict(sorted(kinds.items()))}")
    for w in warnings:
        print("WARN", w)
    for e in errors:
        print("FAIL", e)
    print("validation", "FAILED" if errors else "passed")
    return 1 if errors else 0

if __name__ == "__main__":
    sys.exit(main())
