// Modal forms on native <dialog>: focus is trapped, Esc cancels, Enter submits.
import { h } from "../dom";

export interface FormDialog {
  dialog: HTMLDialogElement;
  form: HTMLFormElement;
  error: HTMLElement;
  submit: HTMLButtonElement;
  close: () => void;
  /** Runs once the dialog is gone, however it was closed. */
  onClosed: (fn: () => void) => void;
}

export function formDialog(title: string, testid: string, fields: HTMLElement[], submitLabel: string): FormDialog {
  const error = h("div", { class: "form-error", role: "alert", testid: `${testid}-error` });
  const submit = h("button", { type: "submit", class: "btn btn-primary", testid: `${testid}-submit` }, submitLabel);
  const cancel = h("button", { type: "button", class: "btn", testid: `${testid}-cancel` }, "Cancel");
  const form = h("form", { class: "dialog-form", novalidate: true },
    h("h3", {}, title), ...fields, error, h("div", { class: "dialog-actions" }, cancel, submit));
  const dialog = h("dialog", { class: "dialog", testid }, form);
  const closed: (() => void)[] = [];
  const close = (): void => {
    if (!dialog.isConnected) return;
    dialog.close();
    dialog.remove();
    for (const fn of closed) fn();
  };
  cancel.addEventListener("click", close);
  dialog.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    close();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  return { dialog, form, error, submit, close, onClosed: (fn) => closed.push(fn) };
}

export function field(id: string, label: string, input: HTMLInputElement, hint?: string): HTMLElement {
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("p", { class: "field-hint" }, hint) : null);
}

/** A yes/no question with the figures it is about; resolves true only on the confirm button. */
export function confirmDialog(title: string, testid: string, lines: [string, string][], confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const rows = lines.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: "num" }, v)]);
    const dlg = formDialog(title, testid, [h("dl", { class: "confirm-lines", testid: `${testid}-lines` }, rows)], confirmLabel);
    let answered = false;
    dlg.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      answered = true;
      dlg.close();
      resolve(true);
    });
    dlg.onClosed(() => {
      if (!answered) resolve(false);
    });
    dlg.submit.focus();
  });
}
