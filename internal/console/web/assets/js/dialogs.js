// Dialogs: a form in a modal <dialog> (the browser keeps the keyboard in
// it, Escape closes it, and focus goes back where it was). A failed submit
// shows the API's error in the dialog and leaves it open.
import {h} from './dom.js';
import {errorBox} from './api.js';

// openDialog shows a dialog whose form holds body; submit calls onSubmit
// with the form, and closes the dialog when it succeeds. It resolves with
// what onSubmit returned, or null when the dialog was cancelled.
export function openDialog({title, body, submitLabel = 'Save', danger = false, onSubmit}) {
  return new Promise(resolve => {
    const problem = h('div', {});
    const submit = h('button', {type: 'submit', class: danger ? 'danger' : 'primary'}, submitLabel);
    const cancel = h('button', {type: 'button'}, 'Cancel');
    const form = h('form', {class: 'stack'}, body, problem, h('div', {class: 'actions'}, submit, cancel));
    const id = 'dialog-title-' + Math.random().toString(36).slice(2);
    const dlg = h('dialog', {'aria-labelledby': id}, h('h2', {id}, title), form);
    let result = null;
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      submit.disabled = true;
      problem.replaceChildren();
      try {
        result = await onSubmit(form);
        dlg.close();
      } catch (err) {
        problem.replaceChildren(errorBox(err));
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// field is a labelled input; hint explains it.
export function field(label, input, hint) {
  const id = input.id || (input.id = 'f-' + Math.random().toString(36).slice(2));
  const hintEl = hint && h('p', {class: 'hint', id: id + '-hint'}, hint);
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', {}, h('label', {for: id}, label), input, hintEl);
}

// checkbox is a labelled checkbox.
export function checkbox(label, attrs = {}, hint) {
  const input = h('input', {type: 'checkbox', ...attrs});
  const id = input.id || (input.id = 'c-' + Math.random().toString(36).slice(2));
  const hintEl = hint && h('p', {class: 'hint', id: id + '-hint'}, hint);
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', {}, h('div', {class: 'check'}, input, h('label', {for: id}, label)), hintEl);
}

// lines splits a textarea's text into its non-empty lines, trimmed.
export function lines(text) {
  return text.split(/[\n,]/).map(s => s.trim()).filter(Boolean);
}
