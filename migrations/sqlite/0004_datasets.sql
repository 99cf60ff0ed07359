-- Datasets: named, versioned sets of inputs (for experiments to run variants over).
--
-- Versions without copies. A dataset's `version` counts the edits of its items: every
-- change (items added, updated or deleted, an import, items from spans) is one new
-- version, written in one transaction with its `dataset_versions` entry. An item row
-- is valid from the version that wrote it (`valid_from`) until the version that
-- replaced or deleted it (`valid_to`, exclusive; NULL while it is current). So
-- version N's items are the rows with `valid_from <= N AND (valid_to IS NULL OR
-- valid_to > N)`: an edit writes only the rows it changes (closes the old row, adds
-- the new one) and never copies the rest, and an older version stays readable as it
-- was, so an experiment that records the version it ran on stays interpretable.
-- An item keeps its `id` and `position` (its place in the list) across its rows.
-- Renaming a dataset or editing its description changes no items: no new version.
-- Times are ISO 8601 UTC text with microseconds, so they sort as text.

CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    project_id TEXT,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL DEFAULT 1,   -- the current version (1: as created)
    item_count INTEGER NOT NULL DEFAULT 0, -- items in the current version
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE
);

-- A name is unique within its project (no project counts as one).
CREATE UNIQUE INDEX datasets_name_per_project ON datasets (COALESCE(project_id, ''), name);
CREATE INDEX datasets_by_created ON datasets (created_at DESC, id DESC);

-- One entry per version: what the edit did and how many items the version holds.
CREATE TABLE dataset_versions (
    dataset_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,                 -- created, items_added, items_updated, items_deleted, imported, from_spans
    at TEXT NOT NULL,
    item_count INTEGER NOT NULL,
    changes TEXT,                         -- JSON {"added": n, "updated": n, "deleted": n}
    PRIMARY KEY (dataset_id, version),
    FOREIGN KEY (dataset_id) REFERENCES datasets(id) ON DELETE CASCADE
);

CREATE TABLE dataset_items (
    row_id INTEGER PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    id TEXT NOT NULL,                     -- the item, the same in each of its rows
    key TEXT NOT NULL,                    -- unique among a version's items
    position INTEGER NOT NULL,            -- order in the list, kept by updates
    operation TEXT,                       -- a request's API dialect: chat, messages, responses...
    variables TEXT,                       -- JSON object (template variables), or
    request TEXT,                         -- JSON object: a whole request (messages, tools...)
    expected_output TEXT,                 -- JSON: text, or {"content", "tool_calls"}
    metadata TEXT,                        -- JSON object
    source_span_id TEXT,                  -- the captured call it came from, if any
    created_at TEXT NOT NULL,             -- when the item was first added
    updated_at TEXT NOT NULL,             -- when this row was written
    valid_from INTEGER NOT NULL,
    valid_to INTEGER,
    CHECK ((variables IS NULL) != (request IS NULL)),
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    FOREIGN KEY (dataset_id) REFERENCES datasets(id) ON DELETE CASCADE
);

-- Keys and ids are unique among the current items (an older version's were when it
-- was current: every edit goes through these).
CREATE UNIQUE INDEX dataset_items_current_key ON dataset_items (dataset_id, key)
    WHERE valid_to IS NULL;
CREATE UNIQUE INDEX dataset_items_current_id ON dataset_items (dataset_id, id)
    WHERE valid_to IS NULL;
CREATE INDEX dataset_items_by_position ON dataset_items (dataset_id, position, valid_from);
CREATE INDEX dataset_items_by_span ON dataset_items (source_span_id)
    WHERE source_span_id IS NOT NULL;
