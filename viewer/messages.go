package viewer

import "github.com/molar-health/molar/viewer/web"

// Messages are the viewer's UI texts: lang → key → text. Keys starting
// with "viewer.js." are also handed to the JavaScript viewer.
func Messages() map[string]map[string]string {
	return map[string]map[string]string{
		"da": {
			"viewer.nav": "Røntgen", "viewer.find.title": "Find patient",
			"viewer.find.label": "CPR-nummer, navn eller fødselsdato", "viewer.find.button": "Søg",
			"viewer.find.hint": "Navn og fødselsdato søger blandt patienter, jeres klinik behandler. Andre findes med CPR-nummer.",
			"viewer.find.none": "Ingen patienter fundet.", "viewer.find.outside": "Uden behandlingsrelation",
			"viewer.col.name": "Navn", "viewer.col.cpr": "CPR-nummer", "viewer.col.birth": "Født",
			"viewer.timeline": "Billeder", "viewer.age": "%d år", "viewer.noimages": "Ingen billeder endnu.",
			"viewer.kind.io": "Intraorale", "viewer.kind.bw": "Bitewings", "viewer.kind.pano": "Panorama",
			"viewer.kind.cbct": "CBCT", "viewer.kind.photo": "Fotos", "viewer.kind.other": "Andre",
			"viewer.images": "%d billeder", "viewer.open": "Åbn", "viewer.mounts": "Mounts", "viewer.nomounts": "Ingen mounts endnu.",
			"viewer.zip": "Hent som ZIP", "viewer.upload": "Indlæs billeder", "viewer.upload.files": "DICOM, ZIP, JPEG/PNG/TIFF eller STL",
			"viewer.upload.send": "Indlæs", "viewer.upload.done": "Gemt: %d, fandtes allerede: %d, afvist: %d", "viewer.upload.failed": "Indlæsningen mislykkedes",
			"viewer.mount.new": "Ny mount", "viewer.mount.template": "Skabelon", "viewer.mount.study": "Undersøgelse",
			"viewer.mount.create": "Opret mount", "viewer.mount.filled": "%d af %d pladser udfyldt",
			"viewer.teeth": "Tænder med billeder", "viewer.tooth.title": "Tand %s over tid",
			"viewer.breakglass.title":  "Ingen behandlingsrelation",
			"viewer.breakglass.text":   "Du har ikke en behandlingsrelation til denne person. Du kan få adgang ved at angive en begrundelse. Adgangen bliver logget og markeret, og personen kan se den i sin adgangslog.",
			"viewer.breakglass.reason": "Begrundelse", "viewer.breakglass.submit": "Giv mig adgang",
			"viewer.breakglass.cannot": "Din rolle kan ikke give sig selv adgang uden for behandlingsrelationen.",
			"viewer.breakglass.short":  "Angiv en begrundelse på mindst 5 tegn.",
			"viewer.breakglass.active": "Nødadgang: %s",
			"viewer.templates.title":   "Mount-skabeloner", "viewer.templates.add": "Tilføj skabelon",
			"viewer.templates.json": "Skabelon (JSON)", "viewer.templates.builtin": "indbygget", "viewer.templates.slots": "%d pladser",
			"viewer.templates.ok": "Skabelonen er gemt.", "viewer.back": "Tilbage til billederne",
			"viewer.js.window": "Vindue (W)", "viewer.js.zoom": "Zoom (Z)", "viewer.js.pan": "Panorér (P)",
			"viewer.js.length": "Længde (L)", "viewer.js.angle": "Vinkel (A)", "viewer.js.text": "Tekst (T)",
			"viewer.js.arrow": "Pil (K)", "viewer.js.calibrate": "Kalibrér (C)", "viewer.js.fit": "Tilpas (F)",
			"viewer.js.rotate": "Rotér 90° (R)", "viewer.js.flip": "Spejl (H)", "viewer.js.invert": "Invertér (I)",
			"viewer.js.sharpen": "Skarpere (S)", "viewer.js.enhance": "Kontrast (E)", "viewer.js.auto": "Auto-vindue (0)",
			"viewer.js.reset": "Nulstil", "viewer.js.tags": "Tags", "viewer.js.download": "Hent", "viewer.js.dicom": "DICOM",
			"viewer.js.png": "PNG", "viewer.js.send": "Send til", "viewer.js.sent": "Sendt til %s",
			"viewer.js.sendfailed": "Kunne ikke sende: %s", "viewer.js.compare": "Sammenlign", "viewer.js.link": "Lås zoom/panorering",
			"viewer.js.preset": "Forvalg", "viewer.js.preset.auto": "Automatisk", "viewer.js.preset.header": "Fra billedet",
			"viewer.js.preset.enamel": "Emalje", "viewer.js.preset.bone": "Knogle", "viewer.js.preset.soft": "Blødt væv",
			"viewer.js.slice": "Snit %d af %d", "viewer.js.loading": "Henter …", "viewer.js.saved": "Gemt",
			"viewer.js.saving": "Gemmer …", "viewer.js.savefailed": "Kunne ikke gemme", "viewer.js.conflict": "Ændret af en anden – deres version vises nu",
			"viewer.js.textprompt": "Tekst:", "viewer.js.calprompt": "Kendt længde i mm:", "viewer.js.uncal": "ukalibreret",
			"viewer.js.detector": "ved detektor", "viewer.js.calibrated": "kalibreret", "viewer.js.delete": "Slet markering (Del)",
			"viewer.js.help": "Genveje (?)", "viewer.js.layout1": "1 billede", "viewer.js.layout2": "2 billeder", "viewer.js.layout4": "4 billeder",
			"viewer.js.mount.hint":   "Træk et billede til en anden plads. Dobbeltklik åbner billedet.",
			"viewer.js.mount.rotate": "Rotér valgt", "viewer.js.mount.flip": "Spejl valgt", "viewer.js.empty": "Tom plads",
			"viewer.js.measurements": "Målinger og markeringer", "viewer.js.none": "Ingen endnu.",
			"viewer.js.shortcuts": "W vindue · Z zoom · P panorér · L længde · A vinkel · T tekst · K pil · C kalibrér · F tilpas · R rotér · H spejl · I invertér · S skarpere · E kontrast · 0 auto-vindue · ↑↓ snit · Del slet · 1/2/4 layout",
		},
		"en": {
			"viewer.nav": "X-rays", "viewer.find.title": "Find a patient",
			"viewer.find.label": "CPR number, name or birth date", "viewer.find.button": "Search",
			"viewer.find.hint": "Name and birth date search the patients your clinic cares for. Others are found by CPR number.",
			"viewer.find.none": "No patients found.", "viewer.find.outside": "Outside care",
			"viewer.col.name": "Name", "viewer.col.cpr": "CPR number", "viewer.col.birth": "Born",
			"viewer.timeline": "Images", "viewer.age": "%d years", "viewer.noimages": "No images yet.",
			"viewer.kind.io": "Intra-oral", "viewer.kind.bw": "Bitewings", "viewer.kind.pano": "Panoramic",
			"viewer.kind.cbct": "CBCT", "viewer.kind.photo": "Photos", "viewer.kind.other": "Other",
			"viewer.images": "%d images", "viewer.open": "Open", "viewer.mounts": "Mounts", "viewer.nomounts": "No mounts yet.",
			"viewer.zip": "Download as ZIP", "viewer.upload": "Import images", "viewer.upload.files": "DICOM, ZIP, JPEG/PNG/TIFF or STL",
			"viewer.upload.send": "Import", "viewer.upload.done": "Stored: %d, already there: %d, rejected: %d", "viewer.upload.failed": "The import failed",
			"viewer.mount.new": "New mount", "viewer.mount.template": "Template", "viewer.mount.study": "Study",
			"viewer.mount.create": "Create mount", "viewer.mount.filled": "%d of %d slots filled",
			"viewer.teeth": "Teeth with images", "viewer.tooth.title": "Tooth %s over time",
			"viewer.breakglass.title":  "No care relation",
			"viewer.breakglass.text":   "You have no care relation with this person. You can get access by stating a reason. The access is logged and flagged, and the person can see it in their access log.",
			"viewer.breakglass.reason": "Reason", "viewer.breakglass.submit": "Give me access",
			"viewer.breakglass.cannot": "Your role cannot grant itself access outside the care relation.",
			"viewer.breakglass.short":  "State a reason of at least 5 characters.",
			"viewer.breakglass.active": "Emergency access: %s",
			"viewer.templates.title":   "Mount templates", "viewer.templates.add": "Add a template",
			"viewer.templates.json": "Template (JSON)", "viewer.templates.builtin": "built in", "viewer.templates.slots": "%d slots",
			"viewer.templates.ok": "The template is saved.", "viewer.back": "Back to the images",
			"viewer.js.window": "Window (W)", "viewer.js.zoom": "Zoom (Z)", "viewer.js.pan": "Pan (P)",
			"viewer.js.length": "Length (L)", "viewer.js.angle": "Angle (A)", "viewer.js.text": "Text (T)",
			"viewer.js.arrow": "Arrow (K)", "viewer.js.calibrate": "Calibrate (C)", "viewer.js.fit": "Fit (F)",
			"viewer.js.rotate": "Rotate 90° (R)", "viewer.js.flip": "Flip (H)", "viewer.js.invert": "Invert (I)",
			"viewer.js.sharpen": "Sharpen (S)", "viewer.js.enhance": "Contrast (E)", "viewer.js.auto": "Auto window (0)",
			"viewer.js.reset": "Reset", "viewer.js.tags": "Tags", "viewer.js.download": "Download", "viewer.js.dicom": "DICOM",
			"viewer.js.png": "PNG", "viewer.js.send": "Send to", "viewer.js.sent": "Sent to %s",
			"viewer.js.sendfailed": "Sending failed: %s", "viewer.js.compare": "Compare", "viewer.js.link": "Link zoom/pan",
			"viewer.js.preset": "Preset", "viewer.js.preset.auto": "Automatic", "viewer.js.preset.header": "From the image",
			"viewer.js.preset.enamel": "Enamel", "viewer.js.preset.bone": "Bone", "viewer.js.preset.soft": "Soft tissue",
			"viewer.js.slice": "Slice %d of %d", "viewer.js.loading": "Loading …", "viewer.js.saved": "Saved",
			"viewer.js.saving": "Saving …", "viewer.js.savefailed": "Could not save", "viewer.js.conflict": "Changed by someone else – their version is shown now",
			"viewer.js.textprompt": "Text:", "viewer.js.calprompt": "Known length in mm:", "viewer.js.uncal": "uncalibrated",
			"viewer.js.detector": "at detector", "viewer.js.calibrated": "calibrated", "viewer.js.delete": "Delete mark (Del)",
			"viewer.js.help": "Shortcuts (?)", "viewer.js.layout1": "1 image", "viewer.js.layout2": "2 images", "viewer.js.layout4": "4 images",
			"viewer.js.mount.hint":   "Drag an image to another slot. Double-click opens the image.",
			"viewer.js.mount.rotate": "Rotate selected", "viewer.js.mount.flip": "Flip selected", "viewer.js.empty": "Empty slot",
			"viewer.js.measurements": "Measurements and marks", "viewer.js.none": "None yet.",
			"viewer.js.shortcuts": "W window · Z zoom · P pan · L length · A angle · T text · K arrow · C calibrate · F fit · R rotate · H flip · I invert · S sharpen · E contrast · 0 auto window · ↑↓ slices · Del delete · 1/2/4 layout",
		},
	}
}

// jsMessages are the "viewer.js." texts in a language, keyed without the prefix.
func jsMessages(cat *web.Catalog, lang string) map[string]string {
	out := map[string]string{}
	for key := range Messages()["da"] {
		if len(key) > 10 && key[:10] == "viewer.js." {
			out[key[10:]] = cat.T(lang, key)
		}
	}
	return out
}
