// Import by upload on the patient's imaging timeline: the chosen files go to
// POST /dicom/upload for this patient (DICOM, ZIP, or pictures and models,
// which are wrapped in DICOM), then the timeline reloads.
(function () {
  'use strict';
  var form = document.getElementById('vw-upload');
  if (!form) { return; }
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var files = document.getElementById('upload-files').files;
    var status = document.getElementById('upload-status');
    if (!files.length) { return; }
    var body = new FormData();
    body.append('person', form.dataset.person);
    for (var i = 0; i < files.length; i++) { body.append('files', files[i], files[i].name); }
    status.textContent = '…';
    fetch(form.action, { method: 'POST', body: body, credentials: 'same-origin',
      headers: { 'X-CSRF-Token': form.dataset.csrf, 'Accept': 'application/json' } })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok || r.status === 202, j: j }; }); })
      .then(function (res) {
        var j = res.j || {};
        status.textContent = (status.dataset.done || '%d %d %d')
          .replace('%d', j.stored || 0).replace('%d', j.duplicates || 0).replace('%d', j.rejected || 0);
        status.dataset.stored = String(j.stored || 0);
        (j.files || []).forEach(function (f) {
          if (f.outcome === 'rejected') {
            var p = document.createElement('p');
            p.className = 'error';
            p.textContent = f.name + ': ' + f.reason;
            status.appendChild(p);
          }
        });
        if (j.stored) { setTimeout(function () { window.location.reload(); }, 1200); }
      })
      .catch(function () { status.textContent = status.dataset.failed || 'failed'; });
  });
})();
