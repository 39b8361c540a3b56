package codec

/*
#cgo pkg-config: libopenjp2
#cgo LDFLAGS: -lcharls
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <charls/charls.h>
#include <openjpeg.h>

// ---- JPEG-LS (CharLS) ----

static int molar_jls_header(const void* src, size_t n, uint32_t* w, uint32_t* h, int32_t* bits, int32_t* comps, int32_t* ilv, const char** msg) {
	charls_jpegls_decoder* d = charls_jpegls_decoder_create();
	if (!d) { *msg = "out of memory"; return -1; }
	charls_jpegls_errc e = charls_jpegls_decoder_set_source_buffer(d, src, n);
	if (!e) e = charls_jpegls_decoder_read_header(d);
	charls_frame_info fi;
	if (!e) e = charls_jpegls_decoder_get_frame_info(d, &fi);
	charls_interleave_mode im = CHARLS_INTERLEAVE_MODE_NONE;
	if (!e) e = charls_jpegls_decoder_get_interleave_mode(d, &im);
	if (e) { *msg = charls_get_error_message(e); charls_jpegls_decoder_destroy(d); return -1; }
	*w = fi.width; *h = fi.height; *bits = fi.bits_per_sample; *comps = fi.component_count; *ilv = (int32_t)im;
	charls_jpegls_decoder_destroy(d);
	return 0;
}

static int molar_jls_decode(const void* src, size_t n, void* dst, size_t dn, const char** msg) {
	charls_jpegls_decoder* d = charls_jpegls_decoder_create();
	if (!d) { *msg = "out of memory"; return -1; }
	charls_jpegls_errc e = charls_jpegls_decoder_set_source_buffer(d, src, n);
	if (!e) e = charls_jpegls_decoder_read_header(d);
	size_t need = 0;
	if (!e) e = charls_jpegls_decoder_get_destination_size(d, 0, &need);
	if (!e && need > dn) { *msg = "destination too small"; charls_jpegls_decoder_destroy(d); return -1; }
	if (!e) e = charls_jpegls_decoder_decode_to_buffer(d, dst, dn, 0);
	if (e) { *msg = charls_get_error_message(e); charls_jpegls_decoder_destroy(d); return -1; }
	charls_jpegls_decoder_destroy(d);
	return 0;
}

// ---- JPEG 2000 (OpenJPEG) ----

typedef struct { const unsigned char* data; size_t size; size_t pos; char err[256]; } molar_mem;

static OPJ_SIZE_T molar_read(void* buf, OPJ_SIZE_T n, void* ud) {
	molar_mem* m = (molar_mem*)ud;
	if (m->pos >= m->size) return (OPJ_SIZE_T)-1;
	size_t k = m->size - m->pos;
	if (k > n) k = n;
	memcpy(buf, m->data + m->pos, k);
	m->pos += k;
	return k;
}
static OPJ_OFF_T molar_skip(OPJ_OFF_T n, void* ud) {
	molar_mem* m = (molar_mem*)ud;
	if (n < 0) { if ((size_t)(-n) > m->pos) n = -(OPJ_OFF_T)m->pos; }
	else if ((size_t)n > m->size - m->pos) n = (OPJ_OFF_T)(m->size - m->pos);
	m->pos += n;
	return n;
}
static OPJ_BOOL molar_seek(OPJ_OFF_T n, void* ud) {
	molar_mem* m = (molar_mem*)ud;
	if (n < 0 || (size_t)n > m->size) return OPJ_FALSE;
	m->pos = (size_t)n;
	return OPJ_TRUE;
}
static void molar_error(const char* msg, void* ud) {
	molar_mem* m = (molar_mem*)ud;
	if (m->err[0] == 0) { strncpy(m->err, msg, sizeof(m->err) - 1); }
}
static void molar_quiet(const char* msg, void* ud) {}

// molar_j2k decodes a codestream (or JP2 file) whose size and component
// count must match; out receives interleaved little endian samples of
// bytes (1 or 2) each, allocated with malloc.
static int molar_j2k(const unsigned char* src, size_t n, uint32_t want_w, uint32_t want_h, uint32_t want_c, int bytes,
		unsigned char** out, size_t* outn, int* prec, int* sgnd, int* mct, char* msg, size_t msgn) {
	molar_mem m; memset(&m, 0, sizeof m); m.data = src; m.size = n;
	OPJ_CODEC_FORMAT fmt = OPJ_CODEC_J2K;
	if (n >= 12 && memcmp(src, "\x00\x00\x00\x0cjP  ", 8) == 0) fmt = OPJ_CODEC_JP2;
	opj_codec_t* codec = opj_create_decompress(fmt);
	opj_dparameters_t p; opj_set_default_decoder_parameters(&p);
	opj_set_error_handler(codec, molar_error, &m);
	opj_set_warning_handler(codec, molar_quiet, &m);
	opj_set_info_handler(codec, molar_quiet, &m);
	opj_image_t* img = NULL;
	opj_stream_t* st = NULL;
	int rc = -1;
	if (!opj_setup_decoder(codec, &p)) { snprintf(msg, msgn, "setup failed"); goto done; }
	st = opj_stream_create(1 << 16, OPJ_TRUE);
	opj_stream_set_user_data(st, &m, NULL);
	opj_stream_set_user_data_length(st, n);
	opj_stream_set_read_function(st, molar_read);
	opj_stream_set_skip_function(st, molar_skip);
	opj_stream_set_seek_function(st, molar_seek);
	if (!opj_read_header(st, codec, &img)) { snprintf(msg, msgn, "header: %s", m.err); goto done; }
	uint32_t w = img->x1 - img->x0, h = img->y1 - img->y0;
	if (w != want_w || h != want_h || img->numcomps != want_c) {
		snprintf(msg, msgn, "codestream is %ux%ux%u, header says %ux%ux%u", w, h, img->numcomps, want_w, want_h, want_c);
		goto done;
	}
	for (uint32_t c = 0; c < img->numcomps; c++) {
		if (img->comps[c].dx != 1 || img->comps[c].dy != 1) { snprintf(msg, msgn, "subsampled component"); goto done; }
		if (img->comps[c].prec > (OPJ_UINT32)(8 * bytes) || img->comps[c].prec == 0) { snprintf(msg, msgn, "%u-bit component in %d bits", img->comps[c].prec, 8 * bytes); goto done; }
	}
	if (!opj_decode(codec, st, img) || !opj_end_decompress(codec, st)) { snprintf(msg, msgn, "decode: %s", m.err); goto done; }
	for (uint32_t c = 0; c < img->numcomps; c++) {
		if (!img->comps[c].data || img->comps[c].w != w || img->comps[c].h != h) { snprintf(msg, msgn, "component %u not decoded", c); goto done; }
	}
	opj_codestream_info_v2_t* info = opj_get_cstr_info(codec);
	*mct = info ? (int)info->m_default_tile_info.mct : 0;
	if (info) opj_destroy_cstr_info(&info);
	*prec = img->comps[0].prec; *sgnd = img->comps[0].sgnd;
	size_t count = (size_t)w * h * img->numcomps;
	*outn = count * bytes;
	*out = malloc(*outn);
	if (!*out) { snprintf(msg, msgn, "out of memory"); goto done; }
	for (size_t i = 0; i < (size_t)w * h; i++) {
		for (uint32_t c = 0; c < img->numcomps; c++) {
			uint32_t v = (uint32_t)img->comps[c].data[i];
			size_t k = (i * img->numcomps + c) * bytes;
			(*out)[k] = (unsigned char)v;
			if (bytes == 2) (*out)[k + 1] = (unsigned char)(v >> 8);
		}
	}
	rc = 0;
done:
	if (img) opj_image_destroy(img);
	if (st) opj_stream_destroy(st);
	opj_destroy_codec(codec);
	return rc;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// decodeJPEGLS decodes a JPEG-LS frame with CharLS.
func decodeJPEGLS(req Request) (Response, error) {
	src := C.CBytes(req.Data)
	defer C.free(src)
	var w, h C.uint32_t
	var bits, comps, ilv C.int32_t
	var msg *C.char
	if C.molar_jls_header(src, C.size_t(len(req.Data)), &w, &h, &bits, &comps, &ilv, &msg) != 0 {
		return Response{}, fmt.Errorf("JPEG-LS: %s", C.GoString(msg))
	}
	if int(w) != req.Columns || int(h) != req.Rows || int(comps) != req.Samples {
		return Response{}, fmt.Errorf("JPEG-LS frame is %d×%d×%d, header says %d×%d×%d", w, h, comps, req.Columns, req.Rows, req.Samples)
	}
	bytes := 1
	if bits > 8 {
		bytes = 2
	}
	if int(bits) > req.Container || bits < 2 || bits > 16 {
		return Response{}, fmt.Errorf("JPEG-LS: %d-bit samples in %d bits allocated", bits, req.Container)
	}
	n := req.Rows * req.Columns * req.Samples * bytes
	dst := C.malloc(C.size_t(n))
	if dst == nil {
		return Response{}, fmt.Errorf("JPEG-LS: out of memory")
	}
	defer C.free(dst)
	if C.molar_jls_decode(src, C.size_t(len(req.Data)), dst, C.size_t(n), &msg) != 0 {
		return Response{}, fmt.Errorf("JPEG-LS: %s", C.GoString(msg))
	}
	out := C.GoBytes(dst, C.int(n))
	if ilv == 0 && req.Samples > 1 { // planes → pixel interleaved
		out = interleave(out, req.Rows*req.Columns, req.Samples, bytes)
	}
	return Response{Rows: req.Rows, Columns: req.Columns, Samples: req.Samples, Bytes: bytes, Precision: int(bits), Data: out}, nil
}

// decodeJPEG2000 decodes a JPEG 2000 frame with OpenJPEG.
func decodeJPEG2000(req Request) (Response, error) {
	src := C.CBytes(req.Data)
	defer C.free(src)
	bytes := 1
	if req.Container > 8 {
		bytes = 2
	}
	var out *C.uchar
	var outn C.size_t
	var prec, sgnd, mct C.int
	msg := make([]byte, 512)
	rc := C.molar_j2k((*C.uchar)(src), C.size_t(len(req.Data)), C.uint32_t(req.Columns), C.uint32_t(req.Rows), C.uint32_t(req.Samples), C.int(bytes),
		&out, &outn, &prec, &sgnd, &mct, (*C.char)(unsafe.Pointer(&msg[0])), C.size_t(len(msg)))
	if rc != 0 {
		return Response{}, fmt.Errorf("JPEG 2000: %s", C.GoString((*C.char)(unsafe.Pointer(&msg[0]))))
	}
	defer C.free(unsafe.Pointer(out))
	return Response{Rows: req.Rows, Columns: req.Columns, Samples: req.Samples, Bytes: bytes, Precision: int(prec),
		Signed: sgnd != 0, ColorTransformed: mct != 0 && req.Samples == 3, Data: C.GoBytes(unsafe.Pointer(out), C.int(outn))}, nil
}

func interleave(planes []byte, pixels, samples, bytes int) []byte {
	out := make([]byte, len(planes))
	for s := range samples {
		for p := range pixels {
			copy(out[(p*samples+s)*bytes:(p*samples+s+1)*bytes], planes[(s*pixels+p)*bytes:(s*pixels+p+1)*bytes])
		}
	}
	return out
}
