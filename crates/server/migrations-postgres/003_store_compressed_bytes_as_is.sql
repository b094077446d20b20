-- Visit documents and photos arrive compressed (Automerge's own
-- compression, JPEG): stored out of line without PostgreSQL compressing
-- them again, which cost the database CPU for nothing.
ALTER TABLE visit_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE evidence_pieces ALTER COLUMN data SET STORAGE EXTERNAL;
