"""A ``ChunkStore`` in Postgres: pgvector's HNSW index for dense search, real BM25 from term statistics.

For teams whose data lives in the Postgres they already run (``[store] backend = "pgvector"``). Each
collection is a table of chunks (with their vectors) and a table of postings (term, chunk, term
frequency and the field's length; for the body and for the title) in its tenant's schema, so
tenants never share an index or a table. Lexical ranking is BM25 computed in SQL from those
statistics (IDF from document frequencies, saturation k1 = 1.2, length normalisation b = 0.75 over
totals kept per collection, the same terms as the memory store's: Snowball-stemmed, as LanceDB's
index), not ``ts_rank``, which has neither IDF nor saturation. Filtered dense queries turn on
pgvector's iterative index scans, so a selective filter still returns k rows when k exist.

A batch is replaced in one transaction (chunks, postings, the collection's totals and version
together), so a reader sees the old chunks of a source or the new ones, and a run killed at any
point re-runs to the exact end state, as with LanceDB. Rows go in by ``COPY``; a new collection is
indexed once its first run has loaded it (``optimize``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from lamina.config import schema_of
from lamina.data.embed.base import Vectors
from lamina.data.filters import RANGES, FieldFilter
from lamina.data.store.base import Where, glob_to_regex
from lamina.data.store.memory import BM25_B, BM25_K1, terms
from lamina.data.types import Chunk, Hit, attrs_json

VERSIONS = "lamina_store_versions"  # per collection: its version and the totals BM25 averages over
# candidates HNSW keeps per row asked for: on lamina bench search's 100k near-duplicate rows,
# recall@10 was 0.959 at 2 (0.941 under a 10% filter) and 0.976 (0.971) at 4, for ~2 ms more
# (m = 16, ef_construction = 64: pgvector's defaults; a denser graph tripled the build time)
EF_SEARCH_PER_K = 4
INDEX_BUILD_MEMORY = "512MB"  # HNSW builds fast while the graph fits in maintenance_work_mem
# what a hit needs, from the chunks table aliased ``c``
_HIT_COLUMNS = (
    "c.chunk_id, c.doc_id, c.source, c.title, c.headings, c.page, c.start_at, c.end_at, c.text, "
    "c.text_hash, c.meta, c.attrs"
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _vector(row: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in row) + "]"


def _field_sql(f: FieldFilter, name: str, params: dict[str, Any]) -> str:
    """One metadata condition, typed as ``lamina.data.filters`` says: equality as jsonb containment
    (the GIN index answers it; numbers compare as numbers), ranges on the value of the key's type."""
    params[f"{name}k"] = f.key
    if f.op in RANGES:
        want = f.values[0]
        params[name] = want
        typed = f"jsonb_typeof(c.attrs -> %({name}k)s)"
        if isinstance(want, str):
            value = f"(CASE WHEN {typed} = 'string' THEN c.attrs ->> %({name}k)s END)"
            return f'{value} COLLATE "C" {RANGES[f.op]} %({name})s'
        value = f"(CASE WHEN {typed} = 'number' THEN (c.attrs ->> %({name}k)s)::float8 END)"
        return f"{value} {RANGES[f.op]} %({name})s::float8"
    params[name] = [json.dumps({f.key: v}) for v in f.values]
    return f"c.attrs @> ANY(%({name})s::jsonb[])"


class PgVectorStore:
    def __init__(self, url: str, collection: str, dim: int) -> None:
        from lamina.data.registry_schema import open_database

        self._dim = dim
        self._name = collection
        self.engine = open_database(url)
        schema = schema_of(url)
        if schema is not None:  # the tenant's schema first, then public, where the vector type lives

            @sa.event.listens_for(self.engine, "connect")
            def _search_path(dbapi_conn: Any, _record: Any) -> None:
                with dbapi_conn.cursor() as cur:
                    cur.execute(f"SET search_path TO {_quote(schema)}, public")
                dbapi_conn.commit()

            self.engine.dispose()  # the connection that made the schema predates the listener

        self._chunks = _quote(f"lc_{collection}")
        self._terms = _quote(f"lc_{collection}_terms")
        self._ready = False

    @property
    def dim(self) -> int:
        return self._dim

    # schema -------------------------------------------------------------------------------------
    def _ensure(self, conn: sa.Connection) -> None:
        if self._ready:
            return
        t, p = self._chunks, self._terms
        for statement in (
            "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public",
            f"""CREATE TABLE IF NOT EXISTS {VERSIONS} (name text PRIMARY KEY, version bigint NOT NULL,
                n bigint NOT NULL DEFAULT 0, body_sum bigint NOT NULL DEFAULT 0,
                title_sum bigint NOT NULL DEFAULT 0)""",
            f"""CREATE TABLE IF NOT EXISTS {t} (
                chunk_id text PRIMARY KEY, doc_id text NOT NULL, source text NOT NULL,
                title text NOT NULL, headings jsonb NOT NULL, page int, start_at int, end_at int,
                n_tokens int, ordinal int NOT NULL, text_hash text NOT NULL, embed_hash text NOT NULL,
                text text NOT NULL, meta text NOT NULL, body_len int NOT NULL, title_len int NOT NULL,
                vector vector({self._dim}) NOT NULL)""",
            # metadata and readers (added to tables made before them): GIN indexes answer containment
            f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS attrs jsonb NOT NULL DEFAULT '{{}}'",
            f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS readers text[] NOT NULL DEFAULT '{{}}'",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_attrs')} ON {t} "
            "USING gin (attrs jsonb_path_ops)",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_readers')} ON {t} USING gin (readers)",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_source')} ON {t} (source)",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_embed')} ON {t} (embed_hash)",
            f"""CREATE TABLE IF NOT EXISTS {p} (
                field char(1) NOT NULL, term text NOT NULL, tf int NOT NULL, len int NOT NULL,
                chunk_id text NOT NULL REFERENCES {t} (chunk_id) ON DELETE CASCADE,
                PRIMARY KEY (field, term, chunk_id) INCLUDE (tf, len))""",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_terms_chunk')} ON {p} (chunk_id)",
        ):
            conn.exec_driver_sql(statement)
        self._ready = True

    def _exists(self, conn: sa.Connection) -> bool:
        if self._ready:
            return True
        found = conn.exec_driver_sql("SELECT to_regclass(%s)", (self._chunks,)).scalar()
        if found is not None:
            self._ensure(conn)  # a table made by an older version gains the columns reads name
        return found is not None

    def _bump(self, conn: sa.Connection, delta: tuple[int, int, int]) -> None:
        """Bump the version and move the collection's BM25 totals (chunks, body and title lengths)."""
        v = VERSIONS
        conn.exec_driver_sql(
            f"INSERT INTO {v} (name, version, n, body_sum, title_sum) VALUES (%s, 1, %s, %s, %s) "
            f"ON CONFLICT (name) DO UPDATE SET version = {v}.version + 1, n = {v}.n + excluded.n, "
            f"body_sum = {v}.body_sum + excluded.body_sum, title_sum = {v}.title_sum + excluded.title_sum",
            (self._name, *delta),
        )

    def _delete(self, conn: sa.Connection, column: str, values: list[str]) -> tuple[int, int, int]:
        """Delete chunks (their postings cascade); the totals they took away, negated."""
        gone = conn.exec_driver_sql(
            f"DELETE FROM {self._chunks} WHERE {column} = ANY(%s) RETURNING body_len, title_len", (values,)
        ).all()
        return -len(gone), -sum(r[0] for r in gone), -sum(r[1] for r in gone)

    # writes -------------------------------------------------------------------------------------
    def replace_documents(self, sources: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors) -> None:
        rows = np.asarray(vectors, dtype=np.float32).reshape(-1, self._dim)
        if len(rows) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(rows)} vectors")
        with self.engine.begin() as conn:
            self._ensure(conn)
            moves = []  # (chunks, body length, title length) taken away and added
            if sources:
                moves.append(self._delete(conn, "source", list(sources)))
            if chunks:
                moves.append(self._delete(conn, "chunk_id", [c.chunk_id for c in chunks]))
                moves.append(self._insert(conn, chunks, rows))
            if moves:
                n, body, title = (sum(m[i] for m in moves) for i in range(3))
                self._bump(conn, (n, body, title))

    def _insert(self, conn: sa.Connection, chunks: Sequence[Chunk], rows: np.ndarray) -> tuple[int, int, int]:
        """COPY the chunks and their postings in; the totals they add."""
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        body_sum = title_sum = 0
        columns = (
            "chunk_id, doc_id, source, title, headings, page, start_at, end_at, n_tokens, ordinal, "
            "text_hash, embed_hash, text, meta, attrs, readers, body_len, title_len, vector"
        )
        postings: list[tuple[str, str, int, int, str]] = []
        with cursor.copy(f"COPY {self._chunks} ({columns}) FROM STDIN") as copy:
            for chunk, row in zip(chunks, rows, strict=True):
                body, title = Counter(terms(chunk.indexed_text)), Counter(terms(chunk.title or ""))
                blen, tlen = sum(body.values()), sum(title.values())
                body_sum, title_sum = body_sum + blen, title_sum + tlen
                copy.write_row(
                    (
                        chunk.chunk_id, chunk.doc_id, chunk.source, chunk.title or "",
                        json.dumps(list(chunk.headings)), chunk.page, chunk.start, chunk.end, chunk.n_tokens,
                        chunk.ordinal, chunk.text_hash, chunk.embed_hash, chunk.text, chunk.meta,
                        chunk.attrs or "{}", list(chunk.readers), blen, tlen, _vector(row),
                    )
                )  # fmt: skip
                postings += [("b", term, tf, blen, chunk.chunk_id) for term, tf in body.items()]
                postings += [("t", term, tf, tlen, chunk.chunk_id) for term, tf in title.items()]
        with cursor.copy(f"COPY {self._terms} (field, term, tf, len, chunk_id) FROM STDIN") as copy:
            for posting in postings:
                copy.write_row(posting)
        return len(chunks), body_sum, title_sum

    def delete_sources(self, sources: Sequence[str]) -> None:
        if not sources:
            return
        with self.engine.begin() as conn:
            if not self._exists(conn):
                return
            delta = self._delete(conn, "source", list(sources))
            if delta[0]:
                self._bump(conn, delta)

    # reads --------------------------------------------------------------------------------------
    @staticmethod
    def _where(where: Where | None, params: dict[str, Any]) -> str:
        clauses = []
        if where and where.source_glob:
            params["glob"] = glob_to_regex(where.source_glob)
            clauses.append("c.source ~ %(glob)s")
        if where and where.document:
            params["document"] = where.document
            clauses.append("(c.doc_id = %(document)s OR c.source = %(document)s)")
        for i, f in enumerate(where.fields if where else ()):
            clauses.append(_field_sql(f, f"f{i}", params))
        if where and where.readers is not None:
            params["readers"] = sorted(where.readers)
            clauses.append("(c.readers = '{}' OR c.readers && %(readers)s::text[])")
        return (" AND " + " AND ".join(clauses)) if clauses else ""

    def _query(
        self, sql: str, params: dict[str, Any], *, ann_k: int = 0, iterative: bool = False
    ) -> list[Any]:
        with self.engine.begin() as conn:
            if not self._exists(conn):
                return []
            settings = []
            if ann_k:  # HNSW returns at most ef_search rows (40 by default): never fewer than k
                ef_search = min(1000, max(40, EF_SEARCH_PER_K * ann_k))
                settings.append(f"SET LOCAL hnsw.ef_search = {ef_search}")
            if ann_k and not iterative:
                # unfiltered, the planner prices the index scan above a scan and sort of every row
                # (whose vectors are TOASTed): 139 ms against 8 on SciFact's 11k chunks
                settings.append("SET LOCAL enable_seqscan = off")
            if iterative:  # filtered ANN: keep scanning the index until k rows pass the filter (the
                # planner may still pick an exact scan of the rows the filter keeps, when it is selective)
                settings.append("SET LOCAL hnsw.iterative_scan = relaxed_order")
            if settings:
                conn.exec_driver_sql("; ".join(settings))
            return list(conn.exec_driver_sql(sql, params))

    @staticmethod
    def _hit(row: Any) -> Hit:
        return Hit(
            chunk_id=row.chunk_id,
            doc_id=row.doc_id,
            source=row.source,
            title=row.title,
            headings=list(row.headings),
            page=row.page,
            text=row.text,
            score=float(row.score),
            start=row.start_at or 0,
            end=row.end_at or 0,
            text_hash=row.text_hash,
            meta=row.meta,
            attrs=attrs_json(row.attrs or {}),
        )

    def dense(self, vector: Vectors, k: int, where: Where | None = None) -> list[Hit]:
        if k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        params: dict[str, Any] = {"q": _vector(query), "k": k}
        filters = self._where(where, params)
        sql = (
            f"SELECT {_HIT_COLUMNS}, 1 - (c.vector <=> %(q)s::vector) AS score FROM {self._chunks} c "
            f"WHERE true{filters} ORDER BY c.vector <=> %(q)s::vector LIMIT %(k)s"
        )
        rows = self._query(sql, params, ann_k=k, iterative=bool(filters))
        return [self._hit(r) for r in rows]

    def lexical(self, query: str, k: int, where: Where | None = None, title_boost: float = 0.0) -> list[Hit]:
        words = sorted(set(terms(query)))
        if not words or k <= 0:
            return []
        fields = ["b", "t"] if title_boost > 0 else ["b"]
        params: dict[str, Any] = {
            "terms": words,
            "fields": fields,
            "boost": title_boost,
            "k": k,
            "name": self._name,
        }
        filters = self._where(where, params)
        t, p, k1, b = self._chunks, self._terms, BM25_K1, BM25_B  # postings carry their field's length
        # The postings of the query's terms only (an index-only scan of the primary key, which
        # carries tf and the field's length), scored per chunk. Unfiltered, only the chunks scoring
        # at least the k-th best score are joined to their rows (ties at the cut included, so the
        # order is exactly the full ranking's); filtered, every scored chunk is, then filtered.
        cut = "" if filters else "WHERE score >= (SELECT coalesce(min(score), 0) FROM top)"
        sql = f"""
            WITH s AS (SELECT n::float8 AS n, greatest(body_sum::float8 / greatest(n, 1), 1) AS ab,
                              greatest(title_sum::float8 / greatest(n, 1), 1) AS at
                       FROM {VERSIONS} WHERE name = %(name)s),
            hits AS MATERIALIZED (SELECT field, term, tf, len, chunk_id FROM {p}
                    WHERE term = ANY(%(terms)s) AND field = ANY(%(fields)s)),
            df AS (SELECT field, term, count(*)::float8 AS df FROM hits GROUP BY field, term),
            scored AS MATERIALIZED (
                SELECT h.chunk_id, sum(
                    CASE WHEN h.field = 'b' THEN 1.0 ELSE %(boost)s END
                    * ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5))
                    * h.tf * {k1 + 1} / (h.tf + {k1} * ({1 - b} + {b} * h.len
                        / CASE WHEN h.field = 'b' THEN s.ab ELSE s.at END))) AS score
                FROM hits h JOIN df ON df.field = h.field AND df.term = h.term CROSS JOIN s
                GROUP BY h.chunk_id),
            top AS (SELECT score FROM scored ORDER BY score DESC LIMIT %(k)s)
            SELECT {_HIT_COLUMNS}, scored.score
            FROM (SELECT * FROM scored {cut}) scored JOIN {t} c ON c.chunk_id = scored.chunk_id
            WHERE scored.score > 0{filters}
            ORDER BY scored.score DESC, c.source, c.ordinal LIMIT %(k)s"""
        return [self._hit(r) for r in self._query(sql, params)]

    def vectors(self, chunk_ids: Sequence[str]) -> Vectors:
        rows = self._query(
            f"SELECT chunk_id, vector::text AS v FROM {self._chunks} WHERE chunk_id = ANY(%(ids)s)",
            {"ids": list(chunk_ids)},
        )
        found = {r.chunk_id: json.loads(r.v) for r in rows}
        ordered = [found[c] for c in chunk_ids if c in found]
        return np.asarray(ordered, dtype=np.float32).reshape(-1, self._dim)

    def count(self) -> int:
        rows = self._query(f"SELECT count(*) AS n FROM {self._chunks}", {})
        return int(rows[0].n) if rows else 0

    def version(self) -> int:
        with self.engine.begin() as conn:
            if not self._exists(conn):
                return 0
            value = conn.exec_driver_sql(
                f"SELECT version FROM {VERSIONS} WHERE name = %s", (self._name,)
            ).scalar()
        return int(value or 0)

    def sources(self) -> dict[str, int]:
        rows = self._query(f"SELECT source, count(*) AS n FROM {self._chunks} GROUP BY source", {})
        return {r.source: int(r.n) for r in rows}

    def reused_vectors(self, embed_hashes: Sequence[str]) -> dict[str, list[float]]:
        rows = self._query(
            f"SELECT DISTINCT ON (embed_hash) embed_hash, vector::text AS v FROM {self._chunks} "
            "WHERE embed_hash = ANY(%(hashes)s)",
            {"hashes": list(embed_hashes)},
        )
        return {r.embed_hash: [float(x) for x in json.loads(r.v)] for r in rows}

    def optimize(self) -> None:
        """Build the HNSW index if missing, then vacuum and refresh the planner's statistics.

        A new collection is bulk-loaded first and indexed once at the end of its first run (one
        pass over every vector rather than a graph grown row by row); from then on every write
        keeps the index up to date, and until then a dense query is an exact scan. The vacuum
        marks pages all-visible, so BM25 reads its postings from the primary key alone.
        """
        with self.engine.begin() as conn:
            if not self._exists(conn):
                return
            conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_hnsw')} ON {self._chunks} "
                "USING hnsw (vector vector_cosine_ops)"
            )
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {self._chunks}, {self._terms}")

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self._terms}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self._chunks}")
            if conn.exec_driver_sql(f"SELECT to_regclass('{VERSIONS}')").scalar() is not None:
                conn.exec_driver_sql(f"DELETE FROM {VERSIONS} WHERE name = %s", (self._name,))
        self._ready = False
