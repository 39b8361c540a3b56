-- Outgoing associations to an AE (C-MOVE destinations, sends, pulls) use
-- DICOM TLS (PS3.15 Annex B.1) when the AE says so.
ALTER TABLE ae ADD COLUMN tls boolean NOT NULL DEFAULT false;
