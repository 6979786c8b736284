from twisted.application.service import ServiceMaker

csvc = ServiceMaker("csvc", "csvc.server", "The csvc containers service (control plane).", "csvc")
csvc_agent = ServiceMaker("csvc-agent", "csvc.agent.service", "The csvc agent of one instance.", "csvc-agent")
