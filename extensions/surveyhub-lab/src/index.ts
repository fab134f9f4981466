import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';

import { appsPlugin } from './apps';
import { SurveyPanel } from './panel';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 2a8 8 0 0 1 7.7 5.8l-3.2.9a4.6 4.6 0 0 0-9 0l-3.2-.9A8 8 0 0 1 12 4zm0 5.5a2.5 2.5 0 1 1 0 5 2.5 2.5 0 0 1 0-5zM4.3 14.2l3.2-.9a4.6 4.6 0 0 0 9 0l3.2.9a8 8 0 0 1-15.4 0z"/>
  </g>
</svg>`;

export const surveyIcon = new LabIcon({
  name: 'surveyhub-lab:survey',
  svgstr: ICON_SVG
});

/**
 * surveyhub-lab: the "Survey data" panel in the left area.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'surveyhub-lab:plugin',
  description:
    'Search a LAMOST data release, preview spectra and import them into your cloud space.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new SurveyPanel();
    panel.commands = app.commands;
    panel.title.icon = surveyIcon;
    panel.title.caption = 'Survey data';
    shell.add(panel, 'left', { rank: 850 });
    if (restorer) {
      restorer.add(panel, 'surveyhub-lab');
    }
    app.commands.addCommand('surveyhub-lab:open', {
      label: 'Survey data',
      execute: () => shell.activateById(panel.id)
    });
  }
};

export default [plugin, appsPlugin];
