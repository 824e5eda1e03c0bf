"""A ``ChunkStore`` in Postgres: pgvector's HNSW index for dense search, real BM25 from term statistics.

For teams whose data lives in the Postgres they already run (``[store] backend = "pgvector"``). Each
collection is a table of chunks (with their vectors) and a table of postings (term, chunk, term
frequency; for the body and for the title) in its tenant's schema, so tenants never share an index
or a table. Lexical ranking is BM25 computed in SQL from those statistics (IDF from document
frequencies, saturation k1 = 1.2, length normalisation b = 0.75, the same terms as the memory
store's), not ``ts_rank``, which has neither IDF nor saturation. Filtered dense queries turn on
pgvector's iterative index scans, so a selective filter still returns k rows when k exist.

A batch is replaced in one transaction (chunks, postings and the collection's version together),
so a reader sees the old chunks of a source or the new ones, and a run killed at any point re-runs
to the exact end state, as with LanceDB.
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
from lamina.data.store.base import Where, glob_to_regex
from lamina.data.store.memory import BM25_B, BM25_K1, terms
from lamina.data.types import Chunk, Hit

VERSIONS = "lamina_store_versions"
# what a hit needs, from the chunks table aliased ``c``
_HIT_COLUMNS = (
    "c.chunk_id, c.doc_id, c.source, c.title, c.headings, c.page, c.start_at, c.end_at, c.text, "
    "c.text_hash, c.meta"
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _vector(row: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in row) + "]"


class PgVectorStore:
    def __init__(self, url: str, collection: str, dim: int) -> None:
        from lamina.data.registry import open_database

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
        index = _quote(f"lc_{self._name}_hnsw")
        for statement in (
            "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public",
            f"CREATE TABLE IF NOT EXISTS {VERSIONS} (name text PRIMARY KEY, version bigint NOT NULL)",
            f"""CREATE TABLE IF NOT EXISTS {t} (
                chunk_id text PRIMARY KEY, doc_id text NOT NULL, source text NOT NULL,
                title text NOT NULL, headings jsonb NOT NULL, page int, start_at int, end_at int,
                n_tokens int, ordinal int NOT NULL, text_hash text NOT NULL, embed_hash text NOT NULL,
                text text NOT NULL, meta text NOT NULL, body_len int NOT NULL, title_len int NOT NULL,
                vector vector({self._dim}) NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_source')} ON {t} (source)",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_embed')} ON {t} (embed_hash)",
            f"CREATE INDEX IF NOT EXISTS {index} ON {t} USING hnsw (vector vector_cosine_ops)",
            f"""CREATE TABLE IF NOT EXISTS {p} (
                field char(1) NOT NULL, term text NOT NULL, tf int NOT NULL,
                chunk_id text NOT NULL REFERENCES {t} (chunk_id) ON DELETE CASCADE,
                PRIMARY KEY (field, term, chunk_id))""",
            f"CREATE INDEX IF NOT EXISTS {_quote(f'lc_{self._name}_terms_chunk')} ON {p} (chunk_id)",
        ):
            conn.exec_driver_sql(statement)
        self._ready = True

    def _exists(self, conn: sa.Connection) -> bool:
        if self._ready:
            return True
        found = conn.exec_driver_sql("SELECT to_regclass(%s)", (self._chunks,)).scalar()
        return found is not None

    def _bump(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql(
            f"INSERT INTO {VERSIONS} (name, version) VALUES (%s, 1) "
            f"ON CONFLICT (name) DO UPDATE SET version = {VERSIONS}.version + 1",
            (self._name,),
        )

    # writes -------------------------------------------------------------------------------------
    def replace_documents(self, sources: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors) -> None:
        rows = np.asarray(vectors, dtype=np.float32).reshape(-1, self._dim)
        if len(rows) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(rows)} vectors")
        with self.engine.begin() as conn:
            self._ensure(conn)
            if sources:
                conn.exec_driver_sql(f"DELETE FROM {self._chunks} WHERE source = ANY(%s)", (list(sources),))
            if chunks:
                conn.exec_driver_sql(
                    f"DELETE FROM {self._chunks} WHERE chunk_id = ANY(%s)", ([c.chunk_id for c in chunks],)
                )
                self._insert(conn, chunks, rows)
            if sources or chunks:
                self._bump(conn)

    def _insert(self, conn: sa.Connection, chunks: Sequence[Chunk], rows: np.ndarray) -> None:
        values, postings = [], []
        for chunk, row in zip(chunks, rows, strict=True):
            body, title = Counter(terms(chunk.indexed_text)), Counter(terms(chunk.title or ""))
            values.append(
                (
                    chunk.chunk_id, chunk.doc_id, chunk.source, chunk.title or "",
                    json.dumps(list(chunk.headings)), chunk.page, chunk.start, chunk.end, chunk.n_tokens,
                    chunk.ordinal, chunk.text_hash, chunk.embed_hash, chunk.text, chunk.meta,
                    sum(body.values()), sum(title.values()), _vector(row),
                )
            )  # fmt: skip
            postings += [("b", term, tf, chunk.chunk_id) for term, tf in body.items()]
            postings += [("t", term, tf, chunk.chunk_id) for term, tf in title.items()]
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()  # psycopg's executemany is pipelined: one round trip per batch
        cursor.executemany(
            f"INSERT INTO {self._chunks} (chunk_id, doc_id, source, title, headings, page, start_at, "
            "end_at, n_tokens, ordinal, text_hash, embed_hash, text, meta, body_len, title_len, vector) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector)",
            values,
        )
        if postings:
            cursor.executemany(
                f"INSERT INTO {self._terms} (field, term, tf, chunk_id) VALUES (%s, %s, %s, %s)", postings
            )

    def delete_sources(self, sources: Sequence[str]) -> None:
        if not sources:
            return
        with self.engine.begin() as conn:
            if not self._exists(conn):
                return
            gone = conn.exec_driver_sql(
                f"DELETE FROM {self._chunks} WHERE source = ANY(%s)", (list(sources),)
            ).rowcount
            if gone:
                self._bump(conn)

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
        return (" AND " + " AND ".join(clauses)) if clauses else ""

    def _query(
        self, sql: str, params: dict[str, Any], *, ann_k: int = 0, iterative: bool = False
    ) -> list[Any]:
        with self.engine.begin() as conn:
            if not self._exists(conn):
                return []
            if ann_k:  # HNSW returns at most ef_search rows (40 by default): never fewer than k
                conn.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {min(1000, max(40, 2 * ann_k))}")
            if iterative:  # filtered ANN: keep scanning the index until k rows pass the filter
                conn.exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
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
        params: dict[str, Any] = {"terms": words, "fields": fields, "boost": title_boost, "k": k}
        filters = self._where(where, params)
        t, p, k1, b = self._chunks, self._terms, BM25_K1, BM25_B
        sql = f"""
            WITH s AS (SELECT count(*)::float8 AS n, coalesce(nullif(avg(body_len), 0), 1)::float8 AS ab,
                              coalesce(nullif(avg(title_len), 0), 1)::float8 AS at FROM {t}),
            df AS (SELECT field, term, count(*)::float8 AS df FROM {p}
                   WHERE term = ANY(%(terms)s) AND field = ANY(%(fields)s) GROUP BY field, term),
            scored AS (
                SELECT p.chunk_id, sum(
                    CASE WHEN p.field = 'b' THEN 1.0 ELSE %(boost)s END
                    * ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5))
                    * p.tf * {k1 + 1} / (p.tf + {k1} * ({1 - b} + {b} * (CASE WHEN p.field = 'b'
                        THEN c.body_len / s.ab ELSE c.title_len / s.at END)))) AS score
                FROM {p} p JOIN df ON df.field = p.field AND df.term = p.term
                JOIN {t} c ON c.chunk_id = p.chunk_id CROSS JOIN s
                GROUP BY p.chunk_id)
            SELECT {_HIT_COLUMNS}, scored.score
            FROM scored JOIN {t} c ON c.chunk_id = scored.chunk_id
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
        """Refresh the planner's statistics (the HNSW index is kept up to date on every write)."""
        with self.engine.begin() as conn:
            if self._exists(conn):
                conn.exec_driver_sql(f"ANALYZE {self._chunks}")
                conn.exec_driver_sql(f"ANALYZE {self._terms}")

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self._terms}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self._chunks}")
            if conn.exec_driver_sql(f"SELECT to_regclass('{VERSIONS}')").scalar() is not None:
                conn.exec_driver_sql(f"DELETE FROM {VERSIONS} WHERE name = %s", (self._name,))
        self._ready = False
