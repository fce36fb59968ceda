-- Catalogue look-ups that scanned the whole catalogue, so their cost grew with it (found in the
-- soak: docs/RELIABILITY.md, "The soak's falling rate").

-- A model's availability by model id (`GET /v1/models/{id}`, each listed model's regions): the
-- primary key starts with the region, so these were sequential scans, one per model listed (a
-- page of 100 took 0.7 s with 46,000 models).
CREATE INDEX catalogue_availability_model ON catalogue_availability (model_id);

-- Listing pages go by model id in byte order (`COLLATE "C"`), which the primary key (the
-- database's collation) cannot give: every page sorted the whole catalogue.
CREATE INDEX catalogue_models_id_bytes ON catalogue_models (model_id COLLATE "C");

-- The retired models: the retirement withdrawals' whole pass (every few seconds on every
-- process) starts from them and looks each up in catalogue_availability by key, instead of
-- hashing every row its region serves.
CREATE INDEX catalogue_models_retired ON catalogue_models (model_id) WHERE lifecycle = 'retired';
