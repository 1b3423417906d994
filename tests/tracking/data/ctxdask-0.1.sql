-- a tracking database written by ctxdask 0.1 (commit 8c276bd, before schema versions):
-- tests/tracking/test_schema.py migrates it. Made by the script in that test's docstring.
BEGIN TRANSACTION;
CREATE TABLE images (
    product_id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed', 'timeout', 'skipped', 'interrupted')),
    summing INTEGER, lines INTEGER, validation TEXT, error TEXT, updated TEXT
);
INSERT INTO "images" VALUES('P02_001981_1823_XI_02N356W','done',2,1024,NULL,NULL,'2026-12-07T12:29:58.131202+00:00');
INSERT INTO "images" VALUES('P03_002258_1817_XI_01N356W','pending',NULL,NULL,NULL,NULL,'2026-12-07T12:29:58.129865+00:00');
INSERT INTO "images" VALUES('B10_013341_1010_XN_79S172W','failed',NULL,NULL,NULL,'spiceinit failed','2026-12-07T12:29:58.131283+00:00');
CREATE TABLE manual_grades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL CHECK (scope IN ('image', 'pair')),
    subject TEXT NOT NULL,
    value TEXT NOT NULL CHECK (value IN ('pass', 'warn', 'fail')),
    note TEXT NOT NULL DEFAULT '',
    who TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
INSERT INTO "manual_grades" VALUES(1,'pair','P02_001981_1823_XI_02N356W-B10_013341_1010_XN_79S172W','fail','clouds','ana','2026-12-07T12:29:58.136023+00:00');
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO "meta" VALUES('schema','1');
CREATE TABLE pair_quality (
    pair_id TEXT PRIMARY KEY, statistics TEXT, stac TEXT, hillshade TEXT, colour_relief TEXT,
    ortho_thumbnail TEXT, updated TEXT
);
INSERT INTO "pair_quality" VALUES('P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W','{"valid_fraction": 0.9}','pairs/ab/item.json','pairs/ab/hs.png',NULL,NULL,'2026-12-07T12:29:58.131509+00:00');
CREATE TABLE pairs (
    pair_id TEXT PRIMARY KEY,
    left_id TEXT NOT NULL, right_id TEXT NOT NULL, line INTEGER,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed', 'timeout', 'skipped', 'interrupted')),
    error TEXT, output_dir TEXT, updated TEXT
);
INSERT INTO "pairs" VALUES('P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W','P02_001981_1823_XI_02N356W','P03_002258_1817_XI_01N356W',1,'pending',NULL,NULL,'2026-12-07T12:29:58.129865+00:00');
INSERT INTO "pairs" VALUES('P02_001981_1823_XI_02N356W-B10_013341_1010_XN_79S172W','P02_001981_1823_XI_02N356W','B10_013341_1010_XN_79S172W',2,'failed','spiceinit failed',NULL,'2026-12-07T12:29:58.131349+00:00');
CREATE TABLE products (
    path TEXT PRIMARY KEY, key TEXT NOT NULL, subject TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, delivered TEXT NOT NULL
);
INSERT INTO "products" VALUES('pairs/ab/item.json','pair_quality-P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W','P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W',10,'0000000000000000000000000000000000000000000000000000000000000000','2026-12-07T12:29:58.131566+00:00');
CREATE TABLE quality (
    product_id TEXT PRIMARY KEY, grade TEXT, reasons TEXT, metrics TEXT, thumbnail TEXT, updated TEXT
);
INSERT INTO "quality" VALUES('P02_001981_1823_XI_02N356W','pass','[]','{"snr": 41.5}','thumbs/a.png','2026-12-07T12:29:58.131444+00:00');
CREATE TABLE rejected (run_id INTEGER NOT NULL, line INTEGER, text TEXT, reason TEXT);
INSERT INTO "rejected" VALUES(1,3,'M junk','''M'' is not a CTX product id of the form PPP_NNNNNN_TTTT_XX_AAHBBBW (e.g. B10_013341_1010_XN_79S172W)');
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL, ended TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'timeout', 'skipped', 'interrupted')),
    host TEXT, pid INTEGER, pairs_file TEXT, out TEXT, scheduler TEXT, dashboard TEXT,
    settings TEXT, error TEXT
);
INSERT INTO "runs" VALUES(1,'2026-12-07T12:29:58.130089+00:00','2026-12-07T12:29:58.132802+00:00','done','vm',7610,'/data/pairs.txt','/data/out','','','{"work_dir": "/scratch/ctxdask"}',NULL);
CREATE TABLE steps (
    key TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('image', 'pair')),
    subject TEXT NOT NULL, step TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'timeout', 'skipped', 'interrupted')),
    run_id INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT, host TEXT, started TEXT, ended TEXT, duration REAL,
    exit_code INTEGER, log_path TEXT, error TEXT, updated TEXT
);
INSERT INTO "steps" VALUES('validate-P02_001981_1823_XI_02N356W','image','P02_001981_1823_XI_02N356W','validate','done',1,1,NULL,NULL,'2026-12-01T10:00:00+00:00','2026-12-01T10:00:02+00:00',2.0,NULL,NULL,NULL,'2026-12-07T12:29:58.130304+00:00');
INSERT INTO "steps" VALUES('validate-P03_002258_1817_XI_01N356W','image','P03_002258_1817_XI_01N356W','validate','done',1,1,NULL,NULL,'2026-12-01T10:00:00+00:00','2026-12-01T10:00:02+00:00',2.0,NULL,NULL,NULL,'2026-12-07T12:29:58.130506+00:00');
INSERT INTO "steps" VALUES('validate-B10_013341_1010_XN_79S172W','image','B10_013341_1010_XN_79S172W','validate','done',1,1,NULL,NULL,'2026-12-01T10:00:00+00:00','2026-12-01T10:00:02+00:00',2.0,NULL,NULL,NULL,'2026-12-07T12:29:58.130636+00:00');
INSERT INTO "steps" VALUES('spiceinit-B10_013341_1010_XN_79S172W','image','B10_013341_1010_XN_79S172W','spiceinit','failed',1,1,NULL,NULL,NULL,NULL,NULL,1,'/data/out/logs/s.log','spiceinit failed: no kernels','2026-12-07T12:29:58.130720+00:00');
INSERT INTO "steps" VALUES('cam2map-B10_013341_1010_XN_79S172W','image','B10_013341_1010_XN_79S172W','cam2map','skipped',1,0,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'not run: spiceinit-B10_013341_1010_XN_79S172W is failed','2026-12-07T12:29:58.130892+00:00');
INSERT INTO "steps" VALUES('point2dem-P02_001981_1823_XI_02N356W-B10_013341_1010_XN_79S172W','pair','P02_001981_1823_XI_02N356W-B10_013341_1010_XN_79S172W','point2dem','skipped',1,0,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'not run: cam2map-B10_013341_1010_XN_79S172W did not succeed','2026-12-07T12:29:58.131045+00:00');
INSERT INTO "steps" VALUES('point2dem-P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W','pair','P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W','point2dem','skipped',1,0,NULL,NULL,NULL,NULL,NULL,NULL,NULL,'point2dem is not installed (ctxdask doctor)','2026-12-07T12:29:58.131126+00:00');
CREATE TABLE tile_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL, tile_index INTEGER NOT NULL, attempt INTEGER NOT NULL,
    x INTEGER, y INTEGER, width INTEGER, height INTEGER,
    run_id INTEGER, dask_key TEXT, worker TEXT, host TEXT, started TEXT, ended TEXT, duration REAL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'timeout', 'lost', 'interrupted',
                                           'skipped')),
    failure_kind TEXT, exit_code INTEGER, log_path TEXT, error TEXT
);
INSERT INTO "tile_attempts" VALUES(1,'P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W',0,1,0,0,512,512,1,'k0','tcp://127.0.0.2:1','','2026-12-07T12:29:58.131825+00:00','2026-12-07T12:29:58.131999+00:00',NULL,'done',NULL,NULL,NULL,NULL);
INSERT INTO "tile_attempts" VALUES(2,'P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W',1,1,512,0,512,512,1,'k1','tcp://127.0.0.3:1','','2026-12-07T12:29:58.132228+00:00','2026-12-07T12:29:58.132316+00:00',NULL,'lost','signal',NULL,NULL,'worker died');
CREATE TABLE tiles (
    pair_id TEXT NOT NULL, tile_index INTEGER NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    padding INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed', 'timeout', 'skipped', 'interrupted')),
    attempts INTEGER NOT NULL DEFAULT 0, failure_kind TEXT, error TEXT, outputs TEXT, sha256 TEXT,
    footprint TEXT, updated TEXT, PRIMARY KEY (pair_id, tile_index)
);
INSERT INTO "tiles" VALUES('P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W',0,0,0,512,512,32,'done',1,NULL,NULL,'{"dem": "tiles/0-DEM.tif"}','{"dem": "1111111111111111111111111111111111111111111111111111111111111111"}','[0, 0, 1, 1]','2026-12-07T12:29:58.132116+00:00');
INSERT INTO "tiles" VALUES('P02_001981_1823_XI_02N356W-P03_002258_1817_XI_01N356W',1,512,0,512,512,32,'failed',1,'signal',NULL,NULL,NULL,NULL,'2026-12-07T12:29:58.132698+00:00');
CREATE INDEX steps_subject ON steps (subject);
CREATE INDEX steps_status ON steps (status);
CREATE INDEX tile_attempts_tile ON tile_attempts (pair_id, tile_index);
CREATE INDEX manual_grades_subject ON manual_grades (subject, id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('runs',1);
INSERT INTO "sqlite_sequence" VALUES('tile_attempts',2);
INSERT INTO "sqlite_sequence" VALUES('manual_grades',1);
COMMIT;
