package main

// imagingPart wires pixel decoding, rendering, thumbnails and DICOMweb.
func imagingPart(s *server) corePart { return corePart{name: "imaging"} }
