# Install rules and the Debian packages (make deb: scripts/deb.sh). Two packages:
#   rexec-hub    /usr/bin/rexec-hub, its unit, the static agent its container terminals run
#                (/usr/lib/rexec/rexec-agent, found by default: hub/docker/agent_binary.h) and the
#                static agents it serves to servers (/usr/lib/rexec/agents/, with .sha256)
#   rexec-agent  /usr/bin/rexec-agent (the static one) and its unit
# The static agents come from their own presets (static-agent, static-agent-arm64); their paths
# are REXEC_STATIC_AGENT_AMD64 / _ARM64. Without them, `make install` installs the dynamic agent
# this build made and no downloads.
include(GNUInstallDirs)

set(REXEC_STATIC_AGENT_AMD64 "" CACHE FILEPATH "static x86_64 rexec-agent to package")
set(REXEC_STATIC_AGENT_ARM64 "" CACHE FILEPATH "static aarch64 rexec-agent to package")

install(TARGETS rexec-hub RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT hub)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(rexec_host_static_agent ${REXEC_STATIC_AGENT_ARM64})
else()
  set(rexec_host_static_agent ${REXEC_STATIC_AGENT_AMD64})
endif()
if(rexec_host_static_agent)
  install(PROGRAMS ${rexec_host_static_agent} DESTINATION ${CMAKE_INSTALL_BINDIR} RENAME rexec-agent COMPONENT agent)
  install(PROGRAMS ${rexec_host_static_agent} DESTINATION lib/rexec RENAME rexec-agent COMPONENT hub)
else()
  install(TARGETS rexec-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT agent)
endif()

# The downloads the hub serves, each with its sha256sum line written beside it at build time:
# the checksum is fixed when the file is packaged, so a file changed later no longer matches.
set(rexec_downloads ${CMAKE_BINARY_DIR}/downloads)
file(MAKE_DIRECTORY ${rexec_downloads})
foreach(arch amd64 arm64)
  string(TOUPPER ${arch} ARCH)
  set(src ${REXEC_STATIC_AGENT_${ARCH}})
  if(NOT src)
    continue()
  endif()
  set(name rexec-agent-linux-${arch})
  add_custom_command(OUTPUT ${rexec_downloads}/${name} ${rexec_downloads}/${name}.sha256
    COMMAND ${CMAKE_COMMAND} -E make_directory ${rexec_downloads}
    COMMAND ${CMAKE_COMMAND} -E copy ${src} ${rexec_downloads}/${name}
    COMMAND sh -c "sha256sum ${name} > ${name}.sha256" WORKING_DIRECTORY ${rexec_downloads}
    DEPENDS ${src} VERBATIM)
  add_custom_target(download_${arch} ALL DEPENDS ${rexec_downloads}/${name})
  install(PROGRAMS ${rexec_downloads}/${name} DESTINATION lib/rexec/agents COMPONENT hub)
  install(FILES ${rexec_downloads}/${name}.sha256 DESTINATION lib/rexec/agents COMPONENT hub)
endforeach()

# The units name /usr/local/bin (where the installer puts the agent); installed here they name
# this prefix's bindir instead.
foreach(unit rexec-hub rexec-agent)
  if(unit STREQUAL "rexec-hub")
    set(component hub)
  else()
    set(component agent)
  endif()
  install(CODE "
    file(READ \"${PROJECT_SOURCE_DIR}/systemd/${unit}.service\" text)
    string(REPLACE \"/usr/local/bin/\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/\" text \"\${text}\")
    string(REPLACE \"/usr/local/lib/rexec/\" \"\${CMAKE_INSTALL_PREFIX}/lib/rexec/\" text \"\${text}\")
    file(WRITE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/${unit}.service\" \"\${text}\")
    " COMPONENT ${component})
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "Rexec developers <rexec@localhost>")
set(CPACK_PACKAGE_VENDOR "Rexec")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL hub agent)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_HUB_PACKAGE_NAME rexec-hub)
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME rexec-agent)
set(CPACK_COMPONENT_HUB_DESCRIPTION "Rexec hub: terminals of many machines and containers in the browser and CLI")
set(CPACK_COMPONENT_AGENT_DESCRIPTION "Rexec agent: dials out to a Rexec hub and runs terminals on this machine")
# The hub's shared libraries, as dpkg-shlibdeps finds them; the agent is static.
set(CPACK_DEBIAN_HUB_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_HUB_PACKAGE_DEPENDS "adduser")  # the postinst makes the rexec user
set(CPACK_DEBIAN_HUB_PACKAGE_RECOMMENDS "docker.io")
set(CPACK_DEBIAN_HUB_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/installers/deb/hub/postinst ${PROJECT_SOURCE_DIR}/installers/deb/hub/prerm)
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/installers/deb/agent/postinst ${PROJECT_SOURCE_DIR}/installers/deb/agent/prerm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
