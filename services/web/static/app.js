/* Minyi citizens' pages: small enhancements over forms that work without this file.
   ES2017, no framework, no third-party code. Every feature checks that the browser has what it
   needs and otherwise leaves the plain form alone. */
(function () {
  "use strict";

  var MAX_SIDE = 1600;          // photos are downscaled to this many pixels on their longer side
  var JPEG_QUALITY = 0.82;
  var KIOSK_IDLE_MS = 90000;    // a kiosk forgets everything after this long without a touch
  var KIOSK_WARN_MS = 15000;    // and says so this long before

  function $(id) { return document.getElementById(id); }

  function setStatus(el, text) { if (el) { el.textContent = text; } }

  function showFieldError(input, message) {
    var field = input.closest(".field") || input.parentNode;
    var id = (input.id || input.name) + "-error";
    var existing = $(id);
    if (!existing) {
      existing = document.createElement("p");
      existing.className = "field-error";
      existing.id = id;
      var anchor = field.querySelector("textarea, input:not([type=hidden]), .chip-list, .star-list");
      field.insertBefore(existing, anchor && anchor.parentNode === field ? anchor : field.firstChild.nextSibling);
    }
    existing.textContent = message;
    input.setAttribute("aria-invalid", "true");
    var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (described.indexOf(id) < 0) { described.push(id); input.setAttribute("aria-describedby", described.join(" ")); }
  }

  function clearFieldError(input) {
    var el = $((input.id || input.name) + "-error");
    if (el && el.parentNode) { el.parentNode.removeChild(el); }
    input.removeAttribute("aria-invalid");
  }

  /* ---- the report form ------------------------------------------------------------------- */

  function initReportForm(form) {
    var content = $("content");
    var counter = $("content-count");
    var max = content ? parseInt(content.getAttribute("maxlength"), 10) || 5000 : 5000;
    var recorded = null;   // {blob, name} of a voice note recorded in the page
    var photoInput = $("photos");
    var voiceInput = $("voice");

    if (content && counter) {
      counter.hidden = false;
      var count = function () {
        var n = Array.from(content.value).length;
        counter.textContent = "已写 " + n + " 字，最多 " + max + " 字";
        counter.classList.toggle("over", n > max);
      };
      content.addEventListener("input", count);
      count();
    }

    initIdentity(form);
    if (photoInput) { initPhotos(photoInput, form); }
    if (voiceInput) {
      initRecorder(voiceInput, function (value) { recorded = value; });
    }
    initLocation();
    initSimilar(form);

    form.addEventListener("submit", function (event) {
      if (!validate(form, recorded)) { event.preventDefault(); return; }
      if (!window.FormData || !window.XMLHttpRequest) { return; }
      event.preventDefault();
      send(form, recorded);
    });
  }

  // Real-name details only when real-name is chosen; without JS both are shown.
  function initIdentity(form) {
    var realname = $("realname");
    var radios = form.querySelectorAll("input[name=identity]");
    var syncIdentity = function () {
      var real = $("identity-real");
      if (realname && real) { realname.hidden = !real.checked; }
    };
    radios.forEach(function (r) { r.addEventListener("change", syncIdentity); });
    syncIdentity();
  }

  /* ---- already reported? (重复反映) -------------------------------------------------------- */

  var SIMILAR_PAUSE_MS = 600;   // searched once the citizen stops typing this long
  var SIMILAR_MIN_CHARS = 6;

  // Matters that what is being typed probably repeats, shown above the submit button while the citizen
  // writes. Never in the way: a failed or slow search shows nothing and the form is sent as ever.
  function initSimilar(form) {
    var url = form.getAttribute("data-similar-url");
    var box = $("similar"), button = $("similar-check"), content = $("content");
    if (!url || !box || !content || !window.fetch || !window.URLSearchParams) { return; }
    var timer = null, asked = "", seq = 0;

    var search = function (auto) {
      // The start of a report says what it is about; the server reads no more than this either.
      var text = Array.from(content.value.trim()).slice(0, 2000).join("");
      var address = $("address"), lat = $("lat"), lon = $("lon"), csrf = form.querySelector("input[name=csrf]");
      var params = new URLSearchParams();
      params.set("csrf", csrf ? csrf.value : "");
      params.set("region", form.getAttribute("data-similar-region") || "");
      params.set("kiosk", form.getAttribute("data-kiosk-code") || "");
      params.set("content", text);
      params.set("address", address ? address.value.trim() : "");
      params.set("lat", lat ? lat.value : "");
      params.set("lon", lon ? lon.value : "");
      params.set("auto", auto ? "1" : "0");
      var key = params.toString();
      if (auto && key === asked) { return; }
      asked = key;
      var mine = ++seq;
      fetch(url, { method: "POST", body: params, credentials: "same-origin" }).then(function (response) {
        // 400 is the fragment saying the page is too old; anything else not ok is some other page.
        if (!response.ok && response.status !== 400) { throw new Error(String(response.status)); }
        return response.text();
      }).then(function (html) {
        // An answer to words since changed is not shown over the answer to the newer ones.
        if (mine !== seq) { return; }
        box.innerHTML = html;
        // The list sits above the submit button, far below the words on a phone: a way down to it.
        var jump = $("similar-jump");
        if (jump) { jump.hidden = !box.querySelector(".similar-item"); }
      }).catch(function () {
        if (mine === seq && !auto) { box.textContent = "暂时无法查找相同的反映，您可以直接提交。"; }
      });
    };

    var later = function () {
      clearTimeout(timer);
      if (Array.from(content.value.trim()).length < SIMILAR_MIN_CHARS) { return; }
      timer = setTimeout(function () { search(true); }, SIMILAR_PAUSE_MS);
    };
    content.addEventListener("input", later);
    var address = $("address");
    if (address) { address.addEventListener("input", later); }
    if (button) {
      // Pressed (or Enter in a field, which presses the form's first button): search here, file nothing.
      button.addEventListener("click", function (event) {
        event.preventDefault();
        clearTimeout(timer);
        search(false);
      });
    }
  }

  function initSupportForm(form) {
    initIdentity(form);
    form.addEventListener("submit", function (event) {
      if (!validate(form, null)) { event.preventDefault(); return; }
      var button = $("support-submit");
      // A second tap while the first is on its way would only be refused as a repeat.
      if (button) { setTimeout(function () { button.disabled = true; }, 0); }
    });
  }

  function validate(form, recorded) {
    var problems = [];
    var content = $("content");
    var voice = $("voice");
    var hasVoice = !!recorded || (voice && voice.files && voice.files.length > 0);
    form.querySelectorAll("[aria-invalid=true]").forEach(clearFieldError);
    if (content && !content.value.trim() && !hasVoice) {
      problems.push([content, "请写下您要反映的事情，或者录一段语音。"]);
    }
    var photos = $("photos");
    var maxPhotos = parseInt(form.getAttribute("data-max-photos"), 10) || 6;
    if (photos && photos.files && photos.files.length > maxPhotos) {
      problems.push([photos, "照片最多 " + maxPhotos + " 张，您选了 " + photos.files.length + " 张。"]);
    }
    var real = $("identity-real");
    if (real && real.checked) {
      var name = $("name"), phone = $("phone"), consent = $("consent");
      if (name && !name.value.trim()) { problems.push([name, "实名反映请填写姓名。"]); }
      if (phone && !phone.value.trim()) { problems.push([phone, "实名反映请填写联系电话，方便代表联系您。"]); }
      else if (phone && !/^(\+?86)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(-\d{1,6})?)$/.test(phone.value.replace(/\s/g, ""))) {
        problems.push([phone, "请填写 11 位手机号，或带区号的固定电话（如 0571-88886666）。"]);
      }
      if (consent && !consent.checked) { problems.push([consent, "实名反映需要您同意个人信息的使用说明。"]); }
    }
    problems.forEach(function (p) { showFieldError(p[0], p[1]); });
    if (problems.length) { problems[0][0].focus(); }
    return problems.length === 0;
  }

  function initPhotos(input, form) {
    var list = $("photo-previews");
    input.addEventListener("change", function () {
      if (!list) { return; }
      list.innerHTML = "";
      Array.from(input.files || []).forEach(function (file, i) {
        var li = document.createElement("li");
        var img = document.createElement("img");
        img.alt = "第 " + (i + 1) + " 张照片";
        img.src = URL.createObjectURL(file);
        li.appendChild(img);
        list.appendChild(li);
      });
      var max = parseInt(form.getAttribute("data-max-photos"), 10) || 6;
      if ((input.files || []).length > max) {
        showFieldError(input, "照片最多 " + max + " 张，您选了 " + input.files.length + " 张。");
      } else {
        clearFieldError(input);
      }
    });
  }

  // A phone photo of 4–12 MB becomes a few hundred KB: faster on a weak network, same use to a deputy.
  function downscale(file) {
    return new Promise(function (resolve) {
      if (!/^image\/(jpeg|png|webp)$/.test(file.type) || !document.createElement("canvas").toBlob) {
        resolve(file); return;
      }
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        var scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(img.naturalWidth * scale);
        canvas.height = Math.round(img.naturalHeight * scale);
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        URL.revokeObjectURL(url);
        canvas.toBlob(function (blob) {
          if (!blob || blob.size >= file.size) { resolve(file); return; }
          resolve(new File([blob], file.name.replace(/\.\w+$/, "") + ".jpg", { type: "image/jpeg" }));
        }, "image/jpeg", JPEG_QUALITY);
      };
      img.onerror = function () { URL.revokeObjectURL(url); resolve(file); };
      img.src = url;
    });
  }

  function recorderType() {
    if (!window.MediaRecorder || !MediaRecorder.isTypeSupported) { return null; }
    var types = [["audio/webm;codecs=opus", "webm"], ["audio/mp4", "m4a"], ["audio/ogg;codecs=opus", "ogg"]];
    for (var i = 0; i < types.length; i++) {
      if (MediaRecorder.isTypeSupported(types[i][0])) { return types[i]; }
    }
    return null;
  }

  function initRecorder(fileInput, onRecorded) {
    var box = $("recorder");
    var type = recorderType();
    if (!box || !type || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { return; }
    var start = $("record-start"), stop = $("record-stop"), discard = $("record-discard");
    var playback = $("record-playback"), status = $("record-status");
    var recorder = null, chunks = [], started = 0, timer = null;
    box.hidden = false;
    // A shared kiosk records in the page; its file picker would open the machine's own folders.
    var kiosk = document.body.classList.contains("kiosk");
    if (kiosk) { fileInput.hidden = true; }
    var fileLabel = document.querySelector("label[for=voice]");
    if (fileLabel) {
      fileLabel.textContent = kiosk ? "语音（选填，按下面的按钮直接说）" : "语音（选填，可以直接录，也可以选录音文件）";
    }

    start.addEventListener("click", function () {
      navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
        chunks = [];
        recorder = new MediaRecorder(stream, { mimeType: type[0] });
        recorder.ondataavailable = function (e) { if (e.data && e.data.size) { chunks.push(e.data); } };
        recorder.onstop = function () {
          stream.getTracks().forEach(function (t) { t.stop(); });
          clearInterval(timer);
          var blob = new Blob(chunks, { type: type[0].split(";")[0] });
          onRecorded({ blob: blob, name: "voice." + type[1] });
          playback.src = URL.createObjectURL(blob);
          playback.hidden = false;
          discard.hidden = false;
          start.hidden = false;
          start.textContent = "重新录一段";
          stop.hidden = true;
          setStatus(status, "已录好 " + Math.round((Date.now() - started) / 1000) + " 秒，可以先听一遍再提交。");
          document.body.removeAttribute("data-recording");
        };
        recorder.start(1000);
        started = Date.now();
        document.body.setAttribute("data-recording", "1");
        start.hidden = true;
        stop.hidden = false;
        playback.hidden = true;
        setStatus(status, "正在录音……说完请点“停止”。");
        timer = setInterval(function () {
          var s = Math.round((Date.now() - started) / 1000);
          setStatus(status, "正在录音 " + s + " 秒……说完请点“停止”。");
          if (s >= 600) { recorder.stop(); }
        }, 1000);
        stop.focus();
      }).catch(function () {
        setStatus(status, "没有拿到麦克风权限。请在浏览器设置里允许使用麦克风，或者选一个录音文件。");
      });
    });
    stop.addEventListener("click", function () { if (recorder && recorder.state !== "inactive") { recorder.stop(); } });
    discard.addEventListener("click", function () {
      onRecorded(null);
      playback.hidden = true;
      playback.removeAttribute("src");
      discard.hidden = true;
      start.textContent = "按一下开始录音";
      setStatus(status, "已删除录音。");
      start.focus();
    });
  }

  function initLocation() {
    var button = $("locate");
    if (!button || !navigator.geolocation) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var status = $("locate-status");
      setStatus(status, "正在获取位置……");
      navigator.geolocation.getCurrentPosition(function (pos) {
        $("lat").value = pos.coords.latitude.toFixed(6);
        $("lon").value = pos.coords.longitude.toFixed(6);
        setStatus(status, "已获取位置（误差约 " + Math.round(pos.coords.accuracy) + " 米），会和反映一起提交。");
      }, function () {
        setStatus(status, "没能获取位置，请直接在上面填写地点。");
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });
  }

  function send(form, recorded) {
    var button = $("submit"), progress = $("upload-progress"), status = $("submit-status");
    var photoInput = $("photos");
    var photos = photoInput && photoInput.files ? Array.from(photoInput.files) : [];
    button.disabled = true;
    setStatus(status, photos.length ? "正在压缩照片……" : "正在提交……");
    Promise.all(photos.map(downscale)).then(function (scaled) {
      var data = new FormData(form);
      data.delete("photos");
      scaled.forEach(function (file) { data.append("photos", file, file.name); });
      var voiceInput = $("voice");
      if (recorded && !(voiceInput && voiceInput.files && voiceInput.files.length)) {
        data.delete("voice");
        data.append("voice", recorded.blob, recorded.name);
      }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action") || location.pathname);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable || !progress) { return; }
        progress.hidden = false;
        progress.value = Math.round(100 * e.loaded / e.total);
        setStatus(status, "正在上传 " + progress.value + "%……");
      };
      xhr.onload = function () {
        var url = xhr.responseURL || "";
        if (xhr.status === 200 && url.indexOf("/r/") >= 0) { location.assign(url); return; }
        showAnswer(xhr.responseText, url);
      };
      xhr.onerror = xhr.ontimeout = function () {
        button.disabled = false;
        if (progress) { progress.hidden = true; }
        setStatus(status, "网络不好，提交没有成功。请检查网络后再点一次“提交反映”，不会重复登记。");
      };
      xhr.timeout = 180000;
      xhr.send(data);
    });
  }

  // The server answered with a page (the form with what to correct, or an error page): show it in place.
  function showAnswer(html, url) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var main = doc.querySelector("main");
    if (!main) { document.open(); document.write(html); document.close(); return; }
    document.title = doc.title;
    document.querySelector("main").innerHTML = main.innerHTML;
    if (url && url !== location.href && url.indexOf("/r/") >= 0) { history.replaceState(null, "", url); }
    init();
    var summary = $("error-summary");
    (summary || document.querySelector("main h1") || document.querySelector("main")).focus();
    window.scrollTo(0, 0);
  }

  /* ---- receipt, rating, kiosk ------------------------------------------------------------ */

  function initReceipt() {
    var copy = $("copy-code");
    if (copy) {
      copy.hidden = false;
      copy.addEventListener("click", function () {
        var text = copy.getAttribute("data-copy");
        var done = function () { setStatus($("copy-status"), "已复制回执码：" + text); };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(done, function () { selectCode(); });
        } else { selectCode(); }
      });
    }
    var print = $("print-slip");
    if (print && window.print) {
      print.hidden = false;
      print.addEventListener("click", function () { window.print(); });
    }
    var rating = $("rating-form");
    if (rating) {
      rating.addEventListener("submit", function (event) {
        var chosen = rating.querySelector("input[name=stars]:checked");
        var comment = $("comment");
        rating.querySelectorAll("[aria-invalid=true]").forEach(clearFieldError);
        if (!chosen) {
          event.preventDefault();
          var first = rating.querySelector("input[name=stars]");
          showFieldError(first, "请选择 1 到 5 颗星。");
          first.focus();
        } else if (parseInt(chosen.value, 10) <= 2 && comment && !comment.value.trim()) {
          event.preventDefault();
          showFieldError(comment, "选择 1 星或 2 星时，请写一下哪里不满意，代表会据此重新办理。");
          comment.focus();
        }
      });
    }
  }

  function selectCode() {
    var code = $("receipt-code");
    if (!code || !window.getSelection) { return; }
    var range = document.createRange();
    range.selectNodeContents(code);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    setStatus($("copy-status"), "已选中回执码，请长按复制。");
  }

  // A kiosk is shared by strangers: after 90 s without a touch it goes back to an empty form.
  function initKiosk() {
    if (!document.body.classList.contains("kiosk")) { return; }
    var done = $("kiosk-done");
    var home = done ? done.getAttribute("href") : location.pathname;
    var notice = $("kiosk-idle");
    var last = Date.now();
    var touched = function () {
      last = Date.now();
      if (notice) { notice.hidden = true; }
    };
    ["pointerdown", "keydown", "input", "touchstart", "scroll"].forEach(function (name) {
      document.addEventListener(name, touched, { passive: true, capture: true });
    });
    setInterval(function () {
      if (document.body.getAttribute("data-recording")) { last = Date.now(); return; }
      var idle = Date.now() - last;
      if (idle >= KIOSK_IDLE_MS) {
        document.querySelectorAll("form").forEach(function (f) { f.reset(); });
        location.replace(home);
      } else if (idle >= KIOSK_IDLE_MS - KIOSK_WARN_MS && notice) {
        notice.hidden = false;
        notice.textContent = "没有操作，" + Math.ceil((KIOSK_IDLE_MS - idle) / 1000) + " 秒后将清空并回到首页。点屏幕任意处继续。";
      }
    }, 1000);
    // Coming back through the history must not show the previous person's words.
    window.addEventListener("pageshow", function (e) { if (e.persisted) { location.replace(home); } });
  }

  function init() {
    var form = $("report-form");
    if (form) { initReportForm(form); }
    var support = $("support-form");
    if (support) { initSupportForm(support); }
    initReceipt();
  }

  document.addEventListener("DOMContentLoaded", function () {
    init();
    initKiosk();
  });
})();
