// Package bench holds Molar's benchmarks against DESIGN §5: the DICOM index
// at scale (this package's Go benchmarks: C-FIND study search and ingest
// with a large index) and the side-by-side C-STORE comparison with Orthanc
// and DCMTK (go run ./bench/dicomperf).
package bench
