// The home page's copy button: shown only when a script can run; the key stays selectable
// in its field without it.
for (const button of document.querySelectorAll("button[data-copy]")) {
  const field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener("click", () => {
    navigator.clipboard.writeText(field.value).then(() => { button.textContent = "Copied"; });
  });
}
