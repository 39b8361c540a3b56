package uid

// SOPClass is a storage SOP class with its PS3.6 name.
type SOPClass struct {
	UID  string
	Name string
}

// storageClasses lists the standard (non-retired) storage SOP classes of
// PS3.4 Annex B that an image archive is expected to accept. The dental
// classes come first.
var storageClasses = []SOPClass{
	// Dental (DOMAIN.md).
	{DigitalIntraOralXRayForPresentation, "Digital Intra-Oral X-Ray Image Storage - For Presentation"},
	{DigitalIntraOralXRayForProcessing, "Digital Intra-Oral X-Ray Image Storage - For Processing"},
	{DigitalXRayForPresentation, "Digital X-Ray Image Storage - For Presentation"},
	{DigitalXRayForProcessing, "Digital X-Ray Image Storage - For Processing"},
	{CTImage, "CT Image Storage"},
	{EnhancedCTImage, "Enhanced CT Image Storage"},
	{XRay3DCraniofacialImage, "X-Ray 3D Craniofacial Image Storage"},
	{VLPhotographicImage, "VL Photographic Image Storage"},
	{SecondaryCaptureImage, "Secondary Capture Image Storage"},
	// Other radiography and cross-sectional imaging.
	{ComputedRadiographyImage, "Computed Radiography Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.1.2", "Digital Mammography X-Ray Image Storage - For Presentation"},
	{"1.2.840.10008.5.1.4.1.1.1.2.1", "Digital Mammography X-Ray Image Storage - For Processing"},
	{"1.2.840.10008.5.1.4.1.1.2.2", "Legacy Converted Enhanced CT Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.3.1", "Ultrasound Multi-frame Image Storage"},
	{MRImage, "MR Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.4.3", "Enhanced MR Color Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.4.4", "Legacy Converted Enhanced MR Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.6.2", "Enhanced US Volume Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.1", "Multi-frame Single Bit Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.2", "Multi-frame Grayscale Byte Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.3", "Multi-frame Grayscale Word Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.7.4", "Multi-frame True Color Secondary Capture Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.12.1", "X-Ray Angiographic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.12.1.1", "Enhanced XA Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.12.2", "X-Ray Radiofluoroscopic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.12.2.1", "Enhanced XRF Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.13.1.1", "X-Ray 3D Angiographic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.13.1.3", "Breast Tomosynthesis Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.20", "Nuclear Medicine Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.30", "Parametric Map Storage"},
	{"1.2.840.10008.5.1.4.1.1.66", "Raw Data Storage"},
	{"1.2.840.10008.5.1.4.1.1.66.1", "Spatial Registration Storage"},
	{"1.2.840.10008.5.1.4.1.1.66.4", "Segmentation Storage"},
	{"1.2.840.10008.5.1.4.1.1.68.1", "Surface Scan Mesh Storage"},
	{"1.2.840.10008.5.1.4.1.1.68.2", "Surface Scan Point Cloud Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.1", "VL Endoscopic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.1.1", "Video Endoscopic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.2", "VL Microscopic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.3", "VL Slide-Coordinates Microscopic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.4.1", "Video Photographic Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.5.1", "Ophthalmic Photography 8 Bit Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.5.2", "Ophthalmic Photography 16 Bit Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.5.4", "Ophthalmic Tomography Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.77.1.6", "VL Whole Slide Microscopy Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.128", "Positron Emission Tomography Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.128.1", "Legacy Converted Enhanced PET Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.130", "Enhanced PET Image Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.1", "RT Image Storage"},
	// Non-image objects that travel with studies.
	{"1.2.840.10008.5.1.4.1.1.11.1", "Grayscale Softcopy Presentation State Storage"},
	{"1.2.840.10008.5.1.4.1.1.11.2", "Color Softcopy Presentation State Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.11", "Basic Text SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.22", "Enhanced SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.33", "Comprehensive SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.34", "Comprehensive 3D SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.59", "Key Object Selection Document Storage"},
	{"1.2.840.10008.5.1.4.1.1.88.67", "X-Ray Radiation Dose SR Storage"},
	{"1.2.840.10008.5.1.4.1.1.104.1", "Encapsulated PDF Storage"},
	// Documents and models (an intra-oral scanner's STL; large values stream to the store).
	{"1.2.840.10008.5.1.4.1.1.104.2", "Encapsulated CDA Storage"},
	{"1.2.840.10008.5.1.4.1.1.104.3", "Encapsulated STL Storage"},
	{"1.2.840.10008.5.1.4.1.1.104.4", "Encapsulated OBJ Storage"},
	{"1.2.840.10008.5.1.4.1.1.104.5", "Encapsulated MTL Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.2", "RT Dose Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.3", "RT Structure Set Storage"},
	{"1.2.840.10008.5.1.4.1.1.481.5", "RT Plan Storage"},
	{"1.2.840.10008.5.1.4.1.1.9.1.1", "12-lead ECG Waveform Storage"},
	{"1.2.840.10008.5.1.4.1.1.9.1.2", "General ECG Waveform Storage"},
}

// StorageSOPClasses returns the default storage SOP classes (a copy).
func StorageSOPClasses() []SOPClass {
	return append([]SOPClass(nil), storageClasses...)
}

// StorageSOPClassUIDs returns the UIDs of StorageSOPClasses.
func StorageSOPClassUIDs() []string {
	out := make([]string, len(storageClasses))
	for i, s := range storageClasses {
		out[i] = s.UID
	}
	return out
}

// IsStorage reports whether u is one of the default storage SOP classes.
func IsStorage(u string) bool {
	for _, s := range storageClasses {
		if s.UID == u {
			return true
		}
	}
	return false
}
