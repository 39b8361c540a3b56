// Package interop holds Molar's DICOM interoperability tests: the ingest,
// index and query packages behind the real SCP, exercised by DCMTK
// (storescu, findscu, movescu, getscu, storescp) and Orthanc, into the
// filesystem store and into S3 (versitygw). It has no code of its own.
package interop
