"""On-disk signature index: a manifest, sketch tables and checksummed blocks of row vectors.

Layout of an index directory::

    manifest.json            format version, status ("building" | "complete"), num_rows, dim, dtype,
                             block_rows, method config, model identity, data hash, created, shards,
                             plan (reference to plan.json: file, sha256, batches, blocks, params)
    plan.json                the batch plan: row ids per batch, batches per block (rise_exp.index.plan)
    sketch.safetensors       tables the vectors were computed with (e.g. CountSketch buckets/signs)
    vectors-00000.npy        float16 [n, dim] signatures of one block
    rows-00000.npy           int64 [n] the row id of each vector (any rows, any order)
    tokens-00000.npy         optional: flat token ids of the block's rows (int32 or int64)
    offsets-00000.npy        optional: int64 [n + 1] start of each row in the flat tokens
    masks-00000.npy          optional: bool flat target masks, aligned with the tokens
    meta-00000.jsonl         optional: one JSON object of free-form metadata per row
    block-00000.done         marker {block, rows, files: {name: sha256}}, written last and atomically

A block without a valid marker does not exist: a resumed build deletes and redoes it (a logged
warning names the block and the reason), and :meth:`SignatureIndex.open` refuses an index with one.
With a plan, block ``b`` holds exactly the rows of the plan's block ``b``, in planned order.
"""

from rise_exp.index.files import DTYPES, FORMAT_VERSION, MANIFEST, TABLES, manifest_diff, tables_sha256
from rise_exp.index.plan import PLAN, BatchPlan
from rise_exp.index.reader import SignatureIndex
from rise_exp.index.writer import IndexWriter

__all__ = [
    "PLAN",
    "BatchPlan",
    "DTYPES",
    "FORMAT_VERSION",
    "MANIFEST",
    "TABLES",
    "IndexWriter",
    "SignatureIndex",
    "manifest_diff",
    "tables_sha256",
]
