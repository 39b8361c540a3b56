// The DICOMweb request sequence OHIF's viewer makes when a study is opened,
// run with the dicomweb-client library OHIF uses, against a running Molar.
// MOLAR_DICOMWEB (base URL), MOLAR_USER and MOLAR_PASSWORD come from the Go
// test that starts the server (cmd/molar TestOHIFRequestSequence).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import XMLHttpRequest from 'xhr2';
import dicomweb from 'dicomweb-client';

globalThis.XMLHttpRequest = XMLHttpRequest;

const url = process.env.MOLAR_DICOMWEB;
const auth = 'Basic ' + Buffer.from(`${process.env.MOLAR_USER}:${process.env.MOLAR_PASSWORD}`).toString('base64');
const client = new dicomweb.api.DICOMwebClient({ url, headers: { Authorization: auth } });

test('OHIF study open sequence', async () => {
  // 1. Study list: QIDO-RS with the attributes OHIF's study browser asks for.
  const studies = await client.searchForStudies({
    queryParams: { limit: '101', offset: '0', fuzzymatching: 'false',
      includefield: '00081030,00080060' },
  });
  assert.ok(studies.length >= 1, 'at least one study');
  const study = studies.find((s) => s['0020000D'].Value[0] === process.env.MOLAR_STUDY);
  assert.ok(study, 'the test study is listed');
  assert.ok(study['00100010'], 'patient name in the default attributes');
  const studyInstanceUID = study['0020000D'].Value[0];

  // 2. Series of the study.
  const series = await client.searchForSeries({ studyInstanceUID });
  assert.equal(series.length, 1);
  const seriesInstanceUID = series[0]['0020000E'].Value[0];

  // 3. Series metadata (OHIF builds its display sets from it).
  const metadata = await client.retrieveSeriesMetadata({ studyInstanceUID, seriesInstanceUID });
  assert.equal(metadata.length, 1);
  const inst = metadata[0];
  const sopInstanceUID = inst['00080018'].Value[0];
  const rows = inst['00280010'].Value[0];
  const cols = inst['00280011'].Value[0];
  const bits = inst['00280100'].Value[0];
  assert.ok(inst['7FE00010'].BulkDataURI, 'pixel data by BulkDataURI');

  // 4. Frames, as cornerstone's WADO-RS image loader asks for them.
  const frames = await client.retrieveInstanceFrames({
    studyInstanceUID, seriesInstanceUID, sopInstanceUID, frameNumbers: [1],
    mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '*' }],
  });
  assert.equal(frames.length, 1);
  assert.equal(frames[0].byteLength, rows * cols * (bits / 8), 'one native frame');

  // 5. Rendered thumbnail for the study browser.
  const rendered = await client.retrieveInstanceRendered({
    studyInstanceUID, seriesInstanceUID, sopInstanceUID, mediaTypes: [{ mediaType: 'image/jpeg' }],
  });
  // dicomweb-client hands back the body as a one-element array of ArrayBuffer.
  const body = Array.isArray(rendered) ? rendered[0] : rendered;
  const jpeg = new Uint8Array(body);
  assert.ok(jpeg.byteLength > 100, 'a JPEG body');
  assert.equal(jpeg[0], 0xff);
  assert.equal(jpeg[1], 0xd8);
});
