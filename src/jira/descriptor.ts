// The Atlassian Connect descriptor (reference/jira-cloud.md §1). Pure: configuration in, JSON out.
// The Forge manifest (forge/manifest.yml) carries the same modules as `connectModules`.

export const PAGE_ROUTES = {
  admin: '/pages/admin',
  project: '/pages/project',
  issue: '/pages/issue',
} as const;

export const LIFECYCLE_ROUTES = {
  installed: '/lifecycle/installed',
  uninstalled: '/lifecycle/uninstalled',
  enabled: '/lifecycle/enabled',
  disabled: '/lifecycle/disabled',
} as const;

export const BUILD_PROVIDER_KEY = 'teamcity-builds';
export const DEPLOYMENT_PROVIDER_KEY = 'teamcity-deployments';
export const APP_NAME = 'TeamCity Integration for Jira';

const siteAdmin = [{ condition: 'user_is_admin' }];

/** The Connect modules, shared by the descriptor and the Forge manifest's connectModules. */
export function connectModules(baseUrl: string) {
  return {
    jiraBuildInfoProvider: {
      key: BUILD_PROVIDER_KEY,
      name: { value: 'TeamCity' },
      homeUrl: baseUrl,
      logoUrl: `${baseUrl}/static/teamcity.svg`,
    },
    jiraDeploymentInfoProvider: {
      key: DEPLOYMENT_PROVIDER_KEY,
      name: { value: 'TeamCity' },
      homeUrl: baseUrl,
      logoUrl: `${baseUrl}/static/teamcity.svg`,
    },
    webSections: [{ key: 'tcj-admin-section', location: 'admin_plugins_menu', name: { value: 'TeamCity' } }],
    adminPages: [
      {
        key: 'tcj-admin',
        name: { value: 'TeamCity servers' },
        url: PAGE_ROUTES.admin,
        location: 'admin_plugins_menu/tcj-admin-section',
        conditions: siteAdmin,
      },
    ],
    configurePage: { key: 'tcj-configure', name: { value: 'Configure TeamCity' }, url: PAGE_ROUTES.admin, conditions: siteAdmin },
    postInstallPage: { key: 'tcj-get-started', name: { value: 'Get started with TeamCity' }, url: PAGE_ROUTES.admin, conditions: siteAdmin },
    jiraProjectAdminTabPanels: [
      {
        key: 'tcj-project',
        name: { value: 'TeamCity' },
        url: `${PAGE_ROUTES.project}?projectId={project.id}&projectKey={project.key}`,
        location: 'projectgroup4',
        weight: 100,
      },
    ],
    jiraIssueGlances: [
      {
        key: 'tcj-issue-glance',
        name: { value: 'TeamCity' },
        icon: { width: 24, height: 24, url: `${baseUrl}/static/teamcity.svg` },
        content: { type: 'label', label: { value: 'Builds' } },
        target: { type: 'web_panel', url: `${PAGE_ROUTES.issue}?issueId={issue.id}&issueKey={issue.key}` },
      },
    ],
  };
}

export function buildDescriptor(opts: { appKey: string; baseUrl: string }) {
  return {
    key: opts.appKey,
    name: APP_NAME,
    description: 'Shows TeamCity builds and deployments in Jira issues, from your TeamCity servers, without touching TeamCity.',
    vendor: { name: 'TeamCity Integration for Jira', url: opts.baseUrl },
    baseUrl: opts.baseUrl,
    apiVersion: 1,
    authentication: { type: 'jwt' },
    lifecycle: LIFECYCLE_ROUTES,
    scopes: ['READ', 'WRITE', 'DELETE'],
    apiMigrations: { 'signed-install': true, 'context-qsh': true, gdpr: true },
    enableLicensing: false,
    modules: connectModules(opts.baseUrl),
  };
}
