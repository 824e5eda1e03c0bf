"""``lamina eval retrieval|grounding|answers|min-similarity``: quality evaluations (from
``lamina.evals``), each next to a baseline measured in the same run where there is one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lamina.cli import models
from lamina.cli.context import state
from lamina.cli.options import DatasetOpt, JsonOpt, LimitOpt
from lamina.cli.output import IngestProgress, console, err_console, print_json
from lamina.data.collection import Workspace
from lamina.errors import LaminaError
from lamina.evals.answers import (
    bundled_dataset,
    default_docs,
    evaluate_answers,
    load_cases,
    one_line,
    temporary_collection,
)
from lamina.evals.beir import dev_split, load_beir
from lamina.evals.extraction import evaluate_extraction
from lamina.evals.grounding import calibrate_min_similarity, evaluate_grounding
from lamina.evals.retrieval import evaluate_retrieval, grid_configs
from lamina.evals.scans import scanned_copies

eval_app = typer.Typer(help="Quality evaluations.", no_args_is_help=True)


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: DatasetOpt,
    limit_docs: LimitOpt = None,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Keep an existing eval collection (no re-ingest).")
    ] = False,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="'test': the dataset's queries. 'dev': queries made from the corpus (each a document's "
            "last sentence, cut from it), for tuning without touching the test queries.",
        ),
    ] = "test",
    grid: Annotated[
        bool, typer.Option("--grid", help="Each lever over a range of values (for tuning on --split dev).")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="Chunk store for this run: lancedb, pgvector (needs database_url), memory."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, Recall@100 and MRR@10 of each retrieval configuration, plus ingest time.

    Lists the three modes as configured, plain RRF, each lever (convex fusion, title field, sum of
    top chunks, dense pseudo-relevance feedback) alone and all together, with each row's search.*
    settings, so the comparison reruns on any BEIR-format data set.
    """
    if split not in ("test", "dev"):
        raise LaminaError(f"unknown split {split!r}; use 'test' or 'dev'")
    data = load_beir(dataset, limit_docs=limit_docs)
    if split == "dev":
        data = dev_split(data)
    configs = grid_configs() if grid else None
    with IngestProgress(f"ingest {data.name}", enabled=not as_json and err_console.is_terminal) as bar:
        workspace = state.workspace
        if store is not None:
            base = state.settings
            workspace = Workspace(
                base.model_copy(update={"store": base.store.model_copy(update={"backend": store})})
            )
        result = evaluate_retrieval(workspace, data, reuse=reuse, progress=bar, configs=configs)
    if as_json:
        print_json(result)
        return
    table = Table(
        "configuration",
        "settings",
        "nDCG@10",
        "Recall@100",
        "MRR@10",
        title=f"{data.name}: {result['queries']} queries",
    )
    for row in result["configs"]:
        settings = " ".join(f"{k}={v}" for k, v in row["settings"].items())
        table.add_row(
            row["label"],
            settings,
            f"{row['ndcg@10']:.4f}",
            f"{row['recall@100']:.4f}",
            f"{row['mrr@10']:.4f}",
        )
    console.print(table)
    console.print(
        f"ingested {result['documents']} documents → {result['chunks']} chunks "
        f"({result['tokens_embedded']:,} tokens, {result['embedding_model']}) in {result['ingest_seconds']}s"
    )


@eval_app.command("grounding")
def eval_grounding(
    dataset: DatasetOpt,
    docs: Annotated[
        int, typer.Option("--max-docs", "--docs", min=2, help="How many abstracts to ingest.")
    ] = 20,
    claims: Annotated[
        int | None, typer.Option("--claims", min=1, help="Ask only the first N claims that fit.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Configured model name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest ~20 SciFact abstracts, ask their claims, report how often a gold abstract is cited."""
    data = load_beir(dataset)
    llm = models.registry().get(model)
    result = evaluate_grounding(state.settings, data, llm, max_docs=docs, max_claims=claims)
    if as_json:
        print_json(result)
        return
    c = result["counts"]
    console.print(
        f"{result['claims']} claims over {result['documents']} abstracts with {result['model']}: "
        f"cites a gold abstract {result['cites_gold']:.1%} (by the model's own \\[n] markers "
        f"{result['cites_gold_by_model_markers']:.1%}); "
        f"gold abstract in context {result['gold_in_context']:.1%}; "
        f"'nothing relevant' {result['nothing_relevant']:.1%}\n"
        f"empty answers {c['empty_answers']} ({result['empty_answers']:.1%}); model output empty "
        f"{c['model_empty']} ({result['model_empty']:.1%}), degenerate {c['model_degenerate']} "
        f"({result['model_degenerate']:.1%}; of which citing nothing {c['model_unsupported']}); "
        f"extractive answers {c['extractive']} "
        f"({result['extractive']:.1%}); {result['seconds']}s"
    )


@eval_app.command("answers")
def eval_answers_command(
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            "-d",
            exists=True,
            dir_okay=False,
            help="JSONL of questions and the strings a right answer contains (default: the bundled set).",
        ),
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-c", help="Ask this collection (default: a temporary one: --docs)."),
    ] = None,
    docs: Annotated[
        list[Path] | None,
        typer.Option(
            "--docs",
            exists=True,
            help="Without -c: folders ingested with the samples (default: ../shared/data/docs if present).",
        ),
    ] = None,
    question_set: Annotated[
        Path | None,
        typer.Option(
            "--set",
            exists=True,
            file_okay=False,
            help="A question set's folder: questions.jsonl and the docs/ it asks about (alone, no samples).",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Configured model name.")] = None,
    scanned: Annotated[
        bool,
        typer.Option(
            "--scanned",
            help="Without -c or --set: the --docs folders' PDFs as scans (image-only PDFs, one-page ones "
            "photographed as JPEG), read by OCR: compare with the run without it.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Are grounded answers right? Per question: right, cited, citing the passage with the answer;
    then the trade-off of the evidence bar (rag.min_evidence): right answers kept, wrong ones refused."""
    cases = load_cases(question_set / "questions.jsonl" if question_set else dataset or bundled_dataset())
    llm = models.registry().get(model)
    if question_set is not None:
        if not as_json:
            err_console.print(f"[dim]ingesting {question_set / 'docs'}…[/]")
        with temporary_collection(state.settings, [question_set / "docs"], samples=False) as coll:
            result = evaluate_answers(coll, llm, cases)
    elif collection is not None:
        result = evaluate_answers(state.workspace.collection(collection), llm, cases)
    else:
        folders = docs if docs is not None else default_docs()
        if not folders:
            raise typer.BadParameter("no ../shared/data/docs here: pass --docs FOLDER or -c COLLECTION")
        with tempfile.TemporaryDirectory(prefix="lamina-scans-") as tmp:
            if scanned:
                folders = scanned_copies(folders, Path(tmp))
            if not as_json:
                what = "scans of " if scanned else ""
                err_console.print(f"[dim]ingesting the samples and {what}{', '.join(map(str, folders))}…[/]")
            with temporary_collection(state.settings, folders) as coll:
                result = evaluate_answers(coll, llm, cases)
            result["scanned"] = scanned
    if as_json:
        print_json(result)
        return
    for r in result["results"]:
        mark = "[green]right[/]" if r["right"] else "[red]wrong[/]"
        where = "cites it" if r["citation_has_answer"] else "cited" if r["cited"] else "uncited"
        said = f"not found (evidence {r['evidence']})" if r["not_found"] else one_line(r["answer"], 80)
        console.print(f"{mark} {r['id']:<22} {where:<8} {said}", highlight=False)
    console.print(tradeoff_table(result["tradeoff"], result["answerable"], result["min_evidence"]))
    t = result["totals"]
    console.print(
        f"{result['model']} on {result['collection']!r}: right {t['right']}/{result['questions']} "
        f"({result['right_share']:.0%}); answerable right {result['right_answerable']}/"
        f"{result['answerable']}, of which citing the passage with the answer "
        f"{result['right_and_cited_where_it_stands']}; cited {t['cited']}, concise {t['concise']}, "
        f"extractive {t['extractive']}, 'nothing relevant' {t['nothing_relevant']}, "
        f"'not found' {t['not_found']} (rag.min_evidence = {result['min_evidence']}), empty {t['empty']}; "
        f"{result['seconds']}s",
        highlight=False,
    )


def tradeoff_table(rows: list[dict[str, Any]], answerable: int, bar: float) -> Table:
    """Right answers kept against wrong ones refused, for each bar on a chosen answer's evidence."""
    table = Table(
        "rag.min_evidence",
        "right kept",
        "right lost",
        "wrong refused",
        "unanswerable refused",
        title="the evidence bar's trade-off (* = the configured bar)",
    )
    for row in rows:
        mark = " *" if row["min_evidence"] == bar else ""
        table.add_row(
            f"{row['min_evidence']:.3f}{mark}",
            f"{row['right_kept']}/{answerable}",
            str(row["right_lost"]),
            str(row["wrong_refused"]),
            str(row["unanswerable_refused"]),
        )
    return table


@eval_app.command("extraction")
def eval_extraction(
    pages: Annotated[
        Path,
        typer.Option(
            "--pages",
            exists=True,
            dir_okay=False,
            help="A page manifest (pages.json: path, kind, gold content by XPath).",
        ),
    ] = Path("evals/extraction/pages.json"),
    as_json: JsonOpt = False,
) -> None:
    """How much of each page's content extraction keeps, and how much chrome, beside the baselines."""
    result = evaluate_extraction(pages)
    if as_json:
        print_json(result)
        return
    methods = result["methods"]
    table = Table("page", "kind", "words", *[f"{m}\ncoverage · chrome" for m in methods], "reported")
    for row in result["pages"]:
        cells = [f"{row[m]['coverage']:.1%} · {row[m]['boilerplate_kept']:.1%}" for m in methods]
        reported = row["lamina_reported_coverage"]
        kept = f"{reported:.1%}" if reported else ""
        table.add_row(row["page"], row["kind"], f"{row['content_words']:,}", *cells, kept)
    console.print(table)
    for m in methods:
        s = result["summary"][m]
        console.print(
            f"{m}: coverage {s['coverage_overall']:.1%} of all content words (mean {s['coverage_mean']:.1%}, "
            f"lowest {s['coverage_min']:.1%}); chrome kept {s['boilerplate_kept_mean']:.1%} (mean)",
            highlight=False,
        )


@eval_app.command("min-similarity")
def eval_min_similarity(dataset: DatasetOpt, as_json: JsonOpt = False) -> None:
    """Calibrate rag.min_similarity on SciFact claims the grounding eval does not ask (equal error rate)."""
    result = calibrate_min_similarity(state.settings, load_beir(dataset))
    if as_json:
        print_json(result)
        return
    console.print(
        f"{result['held_out_claims']} held-out claims: rag.min_similarity = {result['threshold']} "
        f"refuses {result['answerable_refused']:.1%} of them over their gold abstracts and answers "
        f"{result['off_topic_answered']:.1%} of them over the unrelated sample documents\n"
        f"best similarity, answerable: {result['answerable_best_similarity']}\n"
        f"best similarity, off-topic:  {result['off_topic_best_similarity']}",
        highlight=False,
    )
