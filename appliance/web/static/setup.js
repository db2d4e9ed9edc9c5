// Live server-name check in the setup wizard (the form's "Check this name" button works without it).
(function () {
  var input = document.getElementById("domain");
  var out = document.getElementById("name-check");
  if (!input || !out || !window.fetch) return;
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var name = input.value.trim();
      if (name.length < 3) return;
      out.textContent = out.getAttribute("data-checking");
      fetch("/setup/check-name?name=" + encodeURIComponent(name), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (!data.advice) return;
          var p = document.createElement("p");
          p.className = "verdict " + data.verdict;
          p.textContent = new DOMParser().parseFromString(data.advice, "text/html").documentElement.textContent;
          out.replaceChildren(p);
          if (data.addresses.length) {
            var q = document.createElement("p");
            q.textContent = name + " → " + data.addresses.join(", ");
            out.appendChild(q);
          }
        })
        .catch(function () {});
    }, 600);
  });
})();
