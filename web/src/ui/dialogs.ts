// Modal forms on native <dialog>: focus is trapped, Esc cancels, Enter submits.
import { h } from "../dom";

export interface FormDialog {
  dialog: HTMLDialogElement;
  form: HTMLFormElement;
  error: HTMLElement;
  submit: HTMLButtonElement;
  close: () => void;
}

export function formDialog(title: string, testid: string, fields: HTMLElement[], submitLabel: string): FormDialog {
  const error = h("div", { class: "form-error", role: "alert", testid: `${testid}-error` });
  const submit = h("button", { type: "submit", class: "btn btn-primary", testid: `${testid}-submit` }, submitLabel);
  const cancel = h("button", { type: "button", class: "btn", testid: `${testid}-cancel` }, "Cancel");
  const form = h("form", { class: "dialog-form", novalidate: true },
    h("h3", {}, title), ...fields, error, h("div", { class: "dialog-actions" }, cancel, submit));
  const dialog = h("dialog", { class: "dialog", testid }, form);
  const close = (): void => {
    dialog.close();
    dialog.remove();
  };
  cancel.addEventListener("click", close);
  dialog.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    close();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  return { dialog, form, error, submit, close };
}

export function field(id: string, label: string, input: HTMLInputElement, hint?: string): HTMLElement {
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("p", { class: "field-hint" }, hint) : null);
}
