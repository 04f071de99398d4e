// Sort a table by the column whose header button was clicked; again for the other direction.
// Cells sort by their data-sort value when they have one (numbers), else by their text.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach(function (th, column) {
    var button = th.querySelector("button");
    if (!button) return;
    button.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var key = function (row) {
        var cell = row.cells[column];
        var value = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
        return numeric ? parseFloat(value) : value.toLowerCase();
      };
      var body = table.tBodies[0];
      var rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var missingX = numeric ? isNaN(x) : x === "", missingY = numeric ? isNaN(y) : y === "";
        if (missingX || missingY) return missingX - missingY;  // cells with nothing go last either way
        var order = numeric ? x - y : x.localeCompare(y);
        if (order === 0) order = a.cells[0].textContent.localeCompare(b.cells[0].textContent);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
