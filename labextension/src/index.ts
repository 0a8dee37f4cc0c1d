/**
 * Cells whose source starts with `%%bpf` are edited as C; every other code cell keeps the
 * notebook's own language (Python for an IPython kernel).
 *
 * The language of a cell editor follows its model's `mimeType`. The notebook resets that mime
 * type on every code cell when it learns the kernel's language, so each cell model is watched
 * for both a change of its source and a change of its mime type, and the right one is put back.
 * The mime type is not saved in the notebook file: switching it never marks a notebook modified.
 *
 * JupyterLab's theme gives C type names (`int`, `u32`, `struct data_t`) no colour; a style
 * scoped to the C language alone colours them (variable-3: CodeMirror 5 used it for C types), so
 * Python cells are left exactly as they were.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICellModel } from '@jupyterlab/cells';
import {
  EditorExtensionRegistry,
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';
import { HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { tags } from '@lezer/highlight';

/** The mime type CodeMirror's language registry maps to C. */
export const C_MIME_TYPE = 'text/x-csrc';

/** A `%%bpf` cell magic on the first non-blank line (IPython drops leading blank lines). */
const BPF_CELL = /^\s*%%bpf(\s|$)/;

/** Whether a cell's source is a `%%bpf` cell. */
export function isBpfCell(source: string): boolean {
  return BPF_CELL.test(source);
}

/** Give one code cell model the mime type its source calls for. */
function applyLanguage(notebook: Notebook, cell: ICellModel): void {
  if (cell.type !== 'code' || cell.isDisposed) {
    return;
  }
  const wanted = isBpfCell(cell.sharedModel.getSource())
    ? C_MIME_TYPE
    : notebook.codeMimetype;
  if (cell.mimeType !== wanted) {
    cell.mimeType = wanted;
  }
}

/** Keep one cell's language right for as long as the cell lives. */
function watchCell(notebook: Notebook, cell: ICellModel, watched: WeakSet<ICellModel>): void {
  if (watched.has(cell)) {
    return;
  }
  watched.add(cell);
  const apply = () => applyLanguage(notebook, cell);
  cell.contentChanged.connect(apply);
  cell.mimeTypeChanged.connect(apply);
  apply();
}

/** Watch every cell of a notebook, present and future. */
function watchNotebook(panel: NotebookPanel): void {
  const notebook = panel.content;
  const watched = new WeakSet<ICellModel>();
  const watchAll = () => {
    const cells = notebook.model?.cells;
    if (!cells) {
      return;
    }
    for (let i = 0; i < cells.length; i++) {
      watchCell(notebook, cells.get(i), watched);
    }
  };
  notebook.modelChanged.connect(watchAll);
  notebook.model?.cells.changed.connect(watchAll);
  notebook.modelChanged.connect(() => notebook.model?.cells.changed.connect(watchAll));
  void panel.context.ready.then(watchAll);
  watchAll();
}

/** Colour C type names in C editors only (the style is scoped to JupyterLab's C language). */
async function addCTypeColours(
  languages: IEditorLanguageRegistry,
  extensions: IEditorExtensionRegistry
): Promise<void> {
  const c = await languages.getLanguage(C_MIME_TYPE);
  if (!c?.support) {
    return;
  }
  const style = HighlightStyle.define(
    [{ tag: tags.typeName, color: 'var(--jp-mirror-editor-variable-3-color)' }],
    { scope: c.support.language }
  );
  extensions.addExtension({
    name: 'ebpf-nb-highlight:c-types',
    factory: () => EditorExtensionRegistry.createImmutableExtension(syntaxHighlighting(style))
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ebpf-nb-highlight:plugin',
  description: 'Highlights %%bpf cells as C.',
  autoStart: true,
  requires: [INotebookTracker, IEditorLanguageRegistry, IEditorExtensionRegistry],
  activate: async (
    _app: JupyterFrontEnd,
    tracker: INotebookTracker,
    languages: IEditorLanguageRegistry,
    extensions: IEditorExtensionRegistry
  ) => {
    tracker.forEach(watchNotebook);
    tracker.widgetAdded.connect((_tracker, panel) => watchNotebook(panel));
    try {
      await addCTypeColours(languages, extensions);
    } catch (error) {
      console.warn('ebpf-nb-highlight: C type names keep the default colour', error);
    }
  }
};

export default plugin;
